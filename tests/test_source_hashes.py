"""Manifest `source` hashes (issue 12, docs/FORMAT.md "source"): an HF folder's files are listed with their own
sha256 and files_sha256 is the sha256 of `sha256sum`'s listing of them; re-running prepare is a no-op; renaming the
source is not; a manifest written before (no `files`, the old composite `sha256`) still loads, and prepare rebuilds it
once."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

from tiny_models import hf_to_gguf

from model_prep import format as fmt
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load


def _prepare(src: Path, out: Path) -> str:
    log = io.StringIO()
    prepare(src, out, Options(), stream=log)
    return log.getvalue()


def test_hf_folder_files_and_their_sha256sum_listing(tiny_hf, tmp_path: Path) -> None:
    hf = tiny_hf("llama")
    out = tmp_path / "pkg"
    _prepare(hf, out)
    source = open_package(out).manifest["source"]
    assert source["kind"] == "hf" and "sha256" not in source  # no single file: no single sha256
    names = [f["path"] for f in source["files"]]
    assert names == sorted(names) and {"config.json", "tokenizer.json", "model.safetensors"} <= set(names)
    printed = subprocess.run(["sha256sum", *names], cwd=hf, check=True, capture_output=True, text=True).stdout
    assert [line.split()[0] for line in printed.splitlines()] == [f["sha256"] for f in source["files"]]
    assert [f["size"] for f in source["files"]] == [(hf / n).stat().st_size for n in names]
    assert source["files_sha256"] == hashlib.sha256(printed.encode()).hexdigest()
    assert "up to date" in _prepare(hf, out)


def test_gguf_rerun_is_a_no_op_and_a_rename_is_not(tiny_hf, tmp_path: Path) -> None:
    gguf = hf_to_gguf(tiny_hf("llama"), tmp_path / "m.gguf")
    out = tmp_path / "pkg"
    _prepare(gguf, out)
    before = (out / fmt.MANIFEST_FILE).read_bytes()
    assert "up to date" in _prepare(gguf, out)
    assert (out / fmt.MANIFEST_FILE).read_bytes() == before
    renamed = gguf.rename(tmp_path / "renamed.gguf")
    assert "up to date" not in _prepare(renamed, out)
    source = open_package(out).manifest["source"]
    assert source["name"] == "renamed.gguf" and source["files"][0]["path"] == "renamed.gguf"
    assert source["sha256"] == json.loads(before)["source"]["sha256"]  # the same bytes


def test_old_manifest_still_reads_and_is_rebuilt_once(tiny_hf, tmp_path: Path) -> None:
    gguf = hf_to_gguf(tiny_hf("llama"), tmp_path / "m.gguf")
    out = tmp_path / "pkg"
    _prepare(gguf, out)
    want = load(out).generate([{"role": "user", "content": "pump"}], max_tokens=4).token_ids
    manifest = json.loads((out / fmt.MANIFEST_FILE).read_text())
    digest = manifest["source"]["sha256"]
    manifest["source"] = {"kind": "gguf", "name": gguf.name,  # as prepare version 1 wrote it
                          "sha256": hashlib.sha256(gguf.name.encode() + b"\0" + digest.encode()).hexdigest(),
                          "options": Options().to_dict(), "cache_key": "0" * 64}
    (out / fmt.MANIFEST_FILE).write_text(json.dumps(manifest))
    old = tmp_path / "old"
    shutil.copytree(out, old)
    assert load(old).generate([{"role": "user", "content": "pump"}], max_tokens=4).token_ids == want
    assert "up to date" not in _prepare(gguf, out)
    assert open_package(out).manifest["source"]["sha256"] == digest
    assert "up to date" in _prepare(gguf, out)
