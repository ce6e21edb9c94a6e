"""Every bad input gives one clear line on stderr, a non-zero exit code, and leaves no output folder behind."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tiny_models import finish_gguf, hf_to_gguf, tiny_tokenizer, write_gguf

from app.cli import main
from model_prep import pack


def run_prepare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["prepare", *args])
    err = capsys.readouterr().err.strip()
    return rc, err


def assert_clean_failure(rc: int, err: str, out: Path, *words: str) -> None:
    assert rc != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("fieldllm: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists()
    assert not pack.staging_dir(out).exists()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    hf = request.getfixturevalue("tiny_hf")("llama")
    return hf_to_gguf(hf, tmp_path_factory.mktemp("g") / "tiny.gguf", QT.Q8_0)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(tmp_path / "nope.gguf"), "--out", str(out)), out,
                         "nope.gguf", "does not exist")


def test_not_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("pump log\n")
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(src), "--out", str(out)), out, "not a GGUF file")


@pytest.mark.parametrize("keep", [24, 200, 0.5, 0.999])
def test_truncated_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_gguf: Path, keep: float) -> None:
    data = tiny_gguf.read_bytes()
    n = int(keep) if keep >= 1 else int(len(data) * keep)
    src = tmp_path / "cut.gguf"
    src.write_bytes(data[:n])
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(src), "--out", str(out)), out, "truncated")


def test_corrupt_gguf(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_gguf: Path) -> None:
    data = bytearray(tiny_gguf.read_bytes())
    data[8:64] = np.random.default_rng(0).integers(0, 256, 56, dtype=np.uint8).tobytes()  # counts and first keys
    src = tmp_path / "bad.gguf"
    src.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(src), "--out", str(out)), out, "corrupt")


def test_unsupported_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    w.add_tensor("token_embd.weight", np.zeros((8, 32), np.float32))
    finish_gguf(w)
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(tmp_path / "gpt2.gguf"), "--out", str(out)), out,
                         "'gpt2'", "supported: llama, qwen2")


def test_unsupported_tensor_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tok = tiny_tokenizer()
    cfg = {"layers": 1, "hidden": 256, "intermediate": 256, "heads": 4, "kv_heads": 4}
    shapes = {"token_embd.weight": (tok.get_vocab_size(), 256), "output_norm.weight": (256,),
              "blk.0.attn_norm.weight": (256,), "blk.0.ffn_norm.weight": (256,)}
    shapes |= {f"blk.0.{n}.weight": (256, 256) for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
                                                         "ffn_up", "ffn_down")}
    tensors = {n: (np.zeros(s, np.float32), QT.F32) for n, s in shapes.items()}
    path = write_gguf(tmp_path / "iq.gguf", "llama", cfg, {k: v for k, v in tensors.items()
                                                          if k != "blk.0.ffn_down.weight"}, tok)
    # append one IQ2_XXS tensor by rewriting with the raw type (66 bytes per 256 values)
    w = gguf.GGUFWriter(str(tmp_path / "iq2.gguf"), "llama")
    reader = gguf.GGUFReader(path)
    for key, field in reader.fields.items():
        if not key.startswith("GGUF.") and key != "general.architecture":
            w.add_key_value(key, field.contents(), field.types[0], field.types[-1] if len(field.types) > 1 else None)
    for t in reader.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_dtype=QT(t.tensor_type))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((256, 66), np.uint8), raw_dtype=QT.IQ2_XXS)
    finish_gguf(w)
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(tmp_path / "iq2.gguf"), "--out", str(out)), out,
                         "IQ2_XXS", "not supported", "Q4_K", "Q6_K")


@pytest.mark.parametrize("remove", ["tokenizer.json", "config.json", "model.safetensors"])
def test_hf_folder_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_hf, remove: str) -> None:
    src = tmp_path / "ckpt"
    shutil.copytree(tiny_hf("qwen2"), src)
    capsys.readouterr()  # what transformers printed while making the checkpoint
    (src / remove).unlink()
    out = tmp_path / "out"
    word = "safetensors" if remove.endswith("safetensors") else remove
    assert_clean_failure(*run_prepare(capsys, str(src), "--out", str(out)), out, word)


def test_not_enough_disk_space(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(pack.shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 10**6, 10**6))
    out = tmp_path / "out"
    rc, err = run_prepare(capsys, str(tiny_gguf), "--out", str(out))
    assert_clean_failure(rc, err, out, "not enough disk space", "MiB")
    assert rc == 3


def test_disk_fills_while_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_gguf: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = pack.write_atomic
    calls = []

    def full(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(pack, "write_atomic", full)
    out = tmp_path / "out"
    assert_clean_failure(*run_prepare(capsys, str(tiny_gguf), "--out", str(out), "--shard-size", "64KiB"), out,
                         "disk filled up")


def test_out_is_not_a_package(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_gguf: Path) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, err = run_prepare(capsys, str(tiny_gguf), "--out", str(out))
    assert rc != 0 and "not a model package" in err
    assert (out / "keep.txt").read_text() == "mine" and not pack.staging_dir(out).exists()


def test_exit_code_from_the_real_command(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "app.cli", "prepare", str(tmp_path / "x.gguf"), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
