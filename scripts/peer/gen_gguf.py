"""Synthetic GGUF of a real model's shape: random Q4_0/Q4_1 linear weights, Q8_0 embedding (tied head), f32 norms,
zero biases, and a real tokenizer copied from a vocab-only GGUF. Speed benchmarks only: decode cost does not depend
on the values. Usage: gen_gguf.py VOCAB.gguf SHAPE QTYPE OUT.gguf   (SHAPE: smollm2-135m | qwen2.5-1.5b | qwen2.5-3b)"""
import sys

import gguf
import numpy as np

SHAPES = {
    "smollm2-135m": dict(arch="llama", n_vocab=49152, dim=576, ffn=1536, layers=30, heads=9, kv=3, hd=64,
                         eps=1e-5, theta=100000.0, ctx=8192, bias=False),
    "qwen2.5-1.5b": dict(arch="qwen2", n_vocab=151936, dim=1536, ffn=8960, layers=28, heads=12, kv=2, hd=128,
                         eps=1e-6, theta=1000000.0, ctx=32768, bias=True),
    "qwen2.5-3b": dict(arch="qwen2", n_vocab=151936, dim=2048, ffn=11008, layers=36, heads=16, kv=2, hd=128,
                       eps=1e-6, theta=1000000.0, ctx=32768, bias=True),
}
vocab_path, shape, qname, out = sys.argv[1:5]
s = SHAPES[shape]
Q = {"q4_0": gguf.GGMLQuantizationType.Q4_0, "q4_1": gguf.GGMLQuantizationType.Q4_1}[qname]
rng = np.random.default_rng(0)
vr = gguf.GGUFReader(vocab_path)
arch = s["arch"]
w = gguf.GGUFWriter(out, arch=arch)
for name, f in vr.fields.items():
    if not name.startswith("tokenizer."):
        continue
    vt = f.types[0]
    if vt == gguf.GGUFValueType.ARRAY:
        w.add_array(name, f.contents())
    else:
        w.add_key_value(name, f.contents(), vt)
w.add_name(f"synthetic-{shape}")
w.add_context_length(s["ctx"])
w.add_embedding_length(s["dim"])
w.add_feed_forward_length(s["ffn"])
w.add_block_count(s["layers"])
w.add_head_count(s["heads"])
w.add_head_count_kv(s["kv"])
w.add_layer_norm_rms_eps(s["eps"])
w.add_rope_freq_base(s["theta"])
w.add_rope_dimension_count(s["hd"])
w.add_vocab_size(s["n_vocab"])
file_type = gguf.LlamaFileType.MOSTLY_Q4_0 if qname == "q4_0" else gguf.LlamaFileType.MOSTLY_Q4_1
w.add_file_type(int(file_type))

def f16(x):
    return np.full(x, 0, np.float16)

def qblocks(rows, cols, qt):
    nb = rows * (cols // 32)
    if qt == gguf.GGMLQuantizationType.Q8_0:
        b = np.empty((nb, 34), np.uint8)
        b[:, 0:2] = np.frombuffer(np.full(nb, 0.004, np.float16).tobytes(), np.uint8).reshape(nb, 2)
        b[:, 2:] = rng.integers(-40, 40, (nb, 32), dtype=np.int8).view(np.uint8)
    elif qt == gguf.GGMLQuantizationType.Q4_0:
        b = np.empty((nb, 18), np.uint8)
        b[:, 0:2] = np.frombuffer(np.full(nb, 0.01, np.float16).tobytes(), np.uint8).reshape(nb, 2)
        b[:, 2:] = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
    else:  # Q4_1: d, m, 16 bytes
        b = np.empty((nb, 20), np.uint8)
        b[:, 0:2] = np.frombuffer(np.full(nb, 0.01, np.float16).tobytes(), np.uint8).reshape(nb, 2)
        b[:, 2:4] = np.frombuffer(np.full(nb, -0.08, np.float16).tobytes(), np.uint8).reshape(nb, 2)
        b[:, 4:] = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
    return b.reshape(rows, -1)

def add_q(name, rows, cols, qt=Q):
    w.add_tensor(name, qblocks(rows, cols, qt), raw_dtype=qt)

d, hd = s["dim"], s["hd"]
add_q("token_embd.weight", s["n_vocab"], d, gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("output_norm.weight", np.ones(d, np.float32))
for i in range(s["layers"]):
    p = f"blk.{i}."
    w.add_tensor(p + "attn_norm.weight", np.ones(d, np.float32))
    add_q(p + "attn_q.weight", s["heads"] * hd, d)
    add_q(p + "attn_k.weight", s["kv"] * hd, d)
    add_q(p + "attn_v.weight", s["kv"] * hd, d)
    if s["bias"]:
        w.add_tensor(p + "attn_q.bias", np.zeros(s["heads"] * hd, np.float32))
        w.add_tensor(p + "attn_k.bias", np.zeros(s["kv"] * hd, np.float32))
        w.add_tensor(p + "attn_v.bias", np.zeros(s["kv"] * hd, np.float32))
    add_q(p + "attn_output.weight", d, s["heads"] * hd)
    w.add_tensor(p + "ffn_norm.weight", np.ones(d, np.float32))
    add_q(p + "ffn_gate.weight", s["ffn"], d)
    add_q(p + "ffn_up.weight", s["ffn"], d)
    add_q(p + "ffn_down.weight", d, s["ffn"])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(out)
