"""Write a tensor-less GGUF holding only a real model's general.* and tokenizer.* metadata (small enough to carry)."""
import sys

import gguf

src, out = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(src)
w = gguf.GGUFWriter(out, arch=r.fields["general.architecture"].contents())
for name, f in r.fields.items():
    if not (name.startswith("tokenizer.") or name == "general.name"):
        continue
    vt = f.types[0]
    if vt == gguf.GGUFValueType.ARRAY:
        w.add_array(name, f.contents())
    else:
        w.add_key_value(name, f.contents(), vt)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(out)
