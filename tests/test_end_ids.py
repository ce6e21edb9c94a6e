"""End-of-generation ids (issue 12): every end token the model declares goes into manifest generation.eos_token_ids
(GGUF: eos, eot, eom and llama.cpp's end texts; HF: generation_config's list, else config.json's eos and the
tokens whose text is one of llama.cpp's end texts), the reference engine stops on any of
them, and manifest source.sha256 is the GGUF file's own sha256 (docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import gguf
from tiny_models import finish_gguf, hf_to_gguf

from model_prep.gguf_source import END_TEXTS, end_token_ids, read_gguf
from model_prep.hf_source import read_hf_folder
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import default_model_path, prepare
from model_prep.reference.engine import engine_from_package

USER = [{"role": "user", "content": "The pump bearing runs hot"}]


def _meta(tokens: list[str], **ids: int) -> dict:
    return {"tokenizer.ggml.tokens": tokens} | {f"tokenizer.ggml.{k}_token_id": v for k, v in ids.items()}


def test_gguf_end_ids_follow_llama_cpp() -> None:
    # Qwen2: eos <|im_end|>; <|endoftext|> named only as bos and padding
    qwen = ["a", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert end_token_ids(_meta(qwen, eos=3, bos=1, padding=1)) == [3, 1]
    # Llama 3 instruct: eos <|eot_id|>; <|end_of_text|> and <|eom_id|> end too
    llama3 = ["x", "<|begin_of_text|>", "<|end_of_text|>", "<|eom_id|>", "<|eot_id|>", "<|start_header_id|>"]
    assert end_token_ids(_meta(llama3, eos=4, bos=1)) == [4, 2, 3]
    assert end_token_ids(_meta(llama3, eos=4, eom=3, eot=4)) == [4, 3, 2]
    # SmolLM2: <|endoftext|> is the unknown token, not an end (its generation_config lists only <|im_end|>)
    assert end_token_ids(_meta(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], eos=2, bos=1, unknown=0,
                               padding=2)) == [2]
    assert "<|endoftext|>" in END_TEXTS


def test_the_default_model_keeps_one_end_id() -> None:
    meta = gguf.GGUFReader(default_model_path())
    tokens = [str(t) for t in meta.fields["tokenizer.ggml.tokens"].contents()]
    named = {k.removeprefix("tokenizer.ggml.").removesuffix("_token_id"): int(f.contents())
             for k, f in meta.fields.items() if k.endswith("_token_id")}
    assert end_token_ids(_meta(tokens, **named)) == [2]  # so its package stays byte-identical


def test_gguf_file_end_ids_reach_the_manifest(tiny_hf, tmp_path: Path) -> None:
    # tests/tiny_models.py writes eos <|im_end|> and bos <|endoftext|>, as Qwen2's files do
    src = hf_to_gguf(tiny_hf("qwen2"), tmp_path / "m.gguf")
    ckpt = read_gguf(src)
    tok = json.loads(ckpt.tokenizer_text())["model"]["vocab"]
    assert ckpt.generation["eos_token_ids"] == [tok["<|im_end|>"], tok["<|endoftext|>"]]
    pkg = open_package(prepare(src, tmp_path / "pkg", Options(weights="f32")))
    assert pkg.generation["eos_token_ids"] == ckpt.generation["eos_token_ids"]
    # an eom id the file names comes right after eos
    reader = gguf.GGUFReader(src)
    out = tmp_path / "eom.gguf"
    w = gguf.GGUFWriter(str(out), "qwen2")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), field.types[0])
    w.add_uint32("tokenizer.ggml.eom_token_id", 5)
    for t in reader.tensors:
        w.add_tensor(t.name, t.data, raw_shape=list(reversed([int(d) for d in t.shape])), raw_dtype=t.tensor_type)
    finish_gguf(w)
    assert read_gguf(out).generation["eos_token_ids"] == [tok["<|im_end|>"], 5, tok["<|endoftext|>"]]


def test_hf_generation_config_list(tiny_hf, tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    for f in tiny_hf("qwen2").iterdir():
        (hf / f.name).symlink_to(f)
    (hf / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0], "bos_token_id": 0}))
    assert read_hf_folder(hf).generation["eos_token_ids"] == [2, 0]


def _without_generation_config(hf: Path, out: Path) -> Path:
    out.mkdir()
    for f in hf.iterdir():
        if f.name != "generation_config.json":
            (out / f.name).symlink_to(f)
    return out


def test_hf_without_generation_config_adds_the_end_texts(tmp_path: Path) -> None:
    from tiny_models import make_hf

    # Phi-3: config.json names <|endoftext|> only; the turn end <|end|> (in END_TEXTS) ends generation too
    phi3 = make_hf(tmp_path / "phi3", "phi3")
    tok = json.loads((phi3 / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    end, eot = ids["<|end|>"], ids["<|endoftext|>"]
    assert read_hf_folder(phi3).generation["eos_token_ids"] == [end, eot]  # generation_config's list, as it is
    bare = _without_generation_config(phi3, tmp_path / "bare")
    assert json.loads((bare / "config.json").read_text())["eos_token_id"] == eot
    # (the tiny tokenizer also holds ChatML's <|im_end|>, an end text too, so it comes in its id order)
    assert read_hf_folder(bare).generation["eos_token_ids"] == [eot, ids["<|im_end|>"], end]
    assert eot < ids["<|im_end|>"] < end
    # ChatML (Qwen2-like): eos <|im_end|>, then <|endoftext|>, in id order after it; <|im_start|> is no end
    qwen = make_hf(tmp_path / "qwen2", "qwen2")
    q_ids = {t["content"]: t["id"] for t in json.loads((qwen / "tokenizer.json").read_text())["added_tokens"]}
    bare = _without_generation_config(qwen, tmp_path / "bare_qwen")
    assert read_hf_folder(bare).generation["eos_token_ids"] == [q_ids["<|im_end|>"], q_ids["<|endoftext|>"]]
    # the tokenizer's unknown token is left out, as GGUF's (SmolLM2's <|endoftext|>)
    (bare / "tokenizer.json").unlink()
    tok = json.loads((qwen / "tokenizer.json").read_text())
    tok["model"]["unk_token"] = "<|endoftext|>"
    (bare / "tokenizer.json").write_text(json.dumps(tok))
    assert read_hf_folder(bare).generation["eos_token_ids"] == [q_ids["<|im_end|>"]]


def test_reference_engine_stops_on_every_end_id(tiny_hf, tmp_path: Path) -> None:
    pkg = open_package(prepare(tiny_hf("llama"), tmp_path / "pkg", Options(weights="f32")))
    first = engine_from_package(pkg).generate(USER, max_tokens=4)
    assert first.finish_reason == "length" and len(set(first.token_ids)) > 1
    main_eos = pkg.generation["eos_token_ids"][0]
    assert first.token_ids[0] != main_eos
    pkg.manifest["generation"]["eos_token_ids"] = [main_eos, first.token_ids[0]]  # the model's next token ends it
    stopped = engine_from_package(pkg).generate(USER, max_tokens=4)
    assert (stopped.finish_reason, stopped.token_ids, stopped.text) == ("stop", [], "")
    k = next(k for k in range(1, 4) if first.token_ids[k] not in first.token_ids[:k])  # a token not seen before
    pkg.manifest["generation"]["eos_token_ids"] = [main_eos, first.token_ids[k]]
    stopped = engine_from_package(pkg).generate(USER, max_tokens=4)
    assert (stopped.finish_reason, stopped.token_ids) == ("stop", first.token_ids[:k])


def test_source_sha256_is_the_gguf_files_own(smollm2_package: Path) -> None:
    """docs/FORMAT.md: a GGUF source's sha256 is what `sha256sum file.gguf` prints; files lists it with its size;
    files_sha256 is the sha256 of sha256sum's listing."""
    source = json.loads((smollm2_package / "manifest.json").read_text())["source"]
    path = default_model_path()
    printed = subprocess.run(["sha256sum", path.name], cwd=path.parent, check=True, capture_output=True, text=True)
    assert source["name"] == path.name
    assert source["sha256"] == printed.stdout.split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert source["files"] == [{"path": path.name, "size": path.stat().st_size, "sha256": source["sha256"]}]
    assert source["files_sha256"] == hashlib.sha256(printed.stdout.encode()).hexdigest()
