"""What users expect of `fieldllm prepare`: a plan that writes nothing, a cache, resuming, bounded shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tiny_models import hf_to_gguf

from app.cli import main
from model_prep import format as fmt
from model_prep import pack
from model_prep.errors import PackageError
from model_prep.package import open_package


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A tiny llama GGUF mixing carried (Q8_0) and re-quantized (F16) tensors."""
    hf = request.getfixturevalue("tiny_hf")("llama")
    return hf_to_gguf(hf, tmp_path_factory.mktemp("g") / "tiny.gguf", QT.F16)


def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.iterdir()}


def test_plan_writes_nothing(tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out), "--plan", "--shard-size", "16KiB"]) == 0
    err = capsys.readouterr().out
    assert "nothing written" in err and "blk.1.ffn_down.weight" in err and "re-quantized" in err
    assert "split by rows" in err  # the unusual is called out
    assert not out.exists() and not pack.staging_dir(out).exists()


def test_second_run_does_nothing(tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out)]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main(["prepare", str(src), "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().err
    assert _files(out) == before
    # other options: rebuilt
    assert main(["prepare", str(src), "--out", str(out), "--weights", "q8"]) == 0
    assert "up to date" not in capsys.readouterr().err
    assert open_package(out).manifest["tensors"]["blk.0.attn_q.weight"]["storage"] == "q8"
    # a damaged package is not "up to date"
    shard = out / fmt.SHARD_PATTERN.format(0)
    shard.write_bytes(b"\0" + shard.read_bytes()[1:])
    assert main(["prepare", str(src), "--out", str(out), "--weights", "q8"]) == 0
    assert "up to date" not in capsys.readouterr().err
    open_package(out).verify()


def test_interrupted_run_resumes(tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--shard-size", "64KiB"]
    clean = tmp_path / "clean"
    assert main(["prepare", str(src), "--out", str(clean), *args]) == 0
    n_shards = len(open_package(clean).manifest["files"]) - 2  # minus tokenizer.json and report.json
    assert n_shards >= 4

    real = pack._shard_bytes
    built: list[str] = []

    def interrupt_third(shard: pack.ShardPlan, encoder: pack._Encoder) -> bytes:
        if len(built) == 2:
            raise KeyboardInterrupt
        built.append(shard.file)
        return real(shard, encoder)

    out = tmp_path / "out"
    monkeypatch.setattr(pack, "_shard_bytes", interrupt_third)
    assert main(["prepare", str(src), "--out", str(out), *args]) == 130
    assert "resume" in capsys.readouterr().err
    assert not out.exists() and pack.staging_dir(out).exists()

    rebuilt: list[str] = []

    def count(shard: pack.ShardPlan, encoder: pack._Encoder) -> bytes:
        rebuilt.append(shard.file)
        return real(shard, encoder)

    monkeypatch.setattr(pack, "_shard_bytes", count)
    assert main(["prepare", str(src), "--out", str(out), *args]) == 0
    assert sorted(rebuilt) == sorted(set(fmt.SHARD_PATTERN.format(i) for i in range(n_shards)) - set(built))
    assert not pack.staging_dir(out).exists()
    a, b = open_package(clean).manifest, open_package(out).manifest
    assert a["files"] == b["files"] and a["package_id"] == b["package_id"]  # same bytes as an uninterrupted run
    assert json.loads((out / "report.json").read_text())["tensors"] == json.loads(
        (clean / "report.json").read_text())["tensors"]


def test_shards_and_bindings_are_bounded(tmp_path: Path, src: Path) -> None:
    small = open_package(tmp_path / "s") if main(["prepare", str(src), "--out", str(tmp_path / "s"),
                                                  "--shard-size", "16KiB"]) == 0 else None
    whole = open_package(tmp_path / "w") if main(["prepare", str(src), "--out", str(tmp_path / "w")]) == 0 else None
    assert small is not None and whole is not None
    for f in small.manifest["files"]:
        if f["path"].startswith("weights-"):
            assert f["size"] <= 16 * 1024
    split = [n for n, e in small.manifest["tensors"].items() if len(e["chunks"]) > 1]
    assert "token_embd.weight" in split
    for name, entry in small.manifest["tensors"].items():
        rows = 0
        for chunk in entry["chunks"]:
            assert chunk["rows"][0] == rows
            rows = chunk["rows"][1]
            for offset, nbytes in chunk["planes"].values():
                assert offset % fmt.PLANE_ALIGN == 0 and nbytes <= min(16 * 1024, fmt.MAX_BINDING_BYTES)
        assert rows == (entry["shape"][0] if len(entry["shape"]) == 2 else 1)
        assert np.array_equal(small.tensor_f32(name), whole.tensor_f32(name)), name


def test_manifest_lists_every_file_and_rejects_unknown_versions(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "out"
    assert main(["prepare", str(src), "--out", str(out)]) == 0
    pkg = open_package(out)
    pkg.verify()
    listed = {f["path"] for f in pkg.manifest["files"]}
    assert listed == {p.name for p in out.iterdir()} - {fmt.MANIFEST_FILE}
    manifest = json.loads((out / fmt.MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (out / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="format version 99; this fieldllm reads version"):
        open_package(out)


def test_check_reports_perplexities(tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # all values carried over (f32 package of an F16 source widens exactly): the same numbers, bit for bit
    assert main(["prepare", str(src), "--out", str(tmp_path / "f32"), "--weights", "f32", "--check"]) == 0
    exact = json.loads((tmp_path / "f32" / "report.json").read_text())["check"]
    assert exact["perplexity_source"] == exact["perplexity_package"] and exact["text_tokens"] > 50
    # re-quantized to 4 bits: a different, finite perplexity, printed side by side
    assert main(["prepare", str(src), "--out", str(tmp_path / "q4"), "--check"]) == 0
    assert "perplexity on" in capsys.readouterr().err
    q4 = json.loads((tmp_path / "q4" / "report.json").read_text())["check"]
    assert q4["perplexity_package"] != q4["perplexity_source"]
    assert 0.5 < q4["perplexity_ratio"] < 2.0 and np.isfinite(q4["perplexity_package"])
