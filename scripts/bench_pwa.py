#!/usr/bin/env python3
"""Benchmark the installed app in headless Chromium: cold install of the default model from a local server, and
warm start (open the installed app -> ready to answer), each beside reading the same bytes from disk, same run.

Prints one line per figure and a JSON object last. Usage: python scripts/bench_pwa.py [--package DIR]
"Ready" is the app's own state: the model is downloaded, sha256-verified, stored, and loaded into the engine.
WebGPU here is Chromium's SwiftShader (a CPU adapter) unless the machine has a GPU Chromium can use.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # chromium.py
sys.path.insert(0, str(ROOT / "tests" / "pwa"))  # the PWA tests' controllable server and page driver
sys.path.insert(0, str(ROOT / "scripts"))  # disk_read

from app_page import AppPage  # noqa: E402
from chromium import CHROMIUM, WEBGPU_ARGS  # noqa: E402
from disk_read import read_cached, read_uncached  # noqa: E402
from dist_server import DistServer  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from app.build import build  # noqa: E402
from model_prep.plan import Options  # noqa: E402
from model_prep.prepare import default_model_path, prepare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", type=Path, help="model package (default: the default model, prepared here)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = args.package or prepare(default_model_path(), work / "pkg", Options(), stream=sys.stderr)
        dist = build([package], work / "dist").out
        files = [package / f["path"] for f in json.loads((package / "manifest.json").read_text())["files"]]
        files.append(package / "manifest.json")
        size = sum(p.stat().st_size for p in files)
        server = DistServer(dist).start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
                context = browser.new_context()
                app = AppPage(context, server)
                app.open().wait_state("setup")
                t = time.perf_counter()
                app.page.click("#setup-download")
                assert app.wait_problem_or("ready", timeout=600_000) == "ready", app.problem_text()
                install = time.perf_counter() - t
                app.wait_controlled()
                t = time.perf_counter()
                app.page.reload()
                assert app.wait_problem_or("ready", timeout=600_000) == "ready", app.problem_text()
                warm = time.perf_counter() - t
                browser.close()
        finally:
            server.stop()
        cached, uncached = read_cached(files), read_uncached(files)
    result = {"package_bytes": size, "cold_install_s": install, "warm_start_s": warm, "read_cached_s": cached,
              "read_uncached_s": uncached, "install_over_uncached_read": install / uncached if uncached else None,
              "warm_over_uncached_read": warm / uncached if uncached else None}
    print(f"package: {size / 2**20:.1f} MiB in {len(files)} files")
    print(f"cold install (click -> ready: download, verify, store, load): {install:.2f} s")
    print(f"warm start (reload the installed app -> ready): {warm:.2f} s")
    print(f"read the same bytes from disk: {uncached:.3f} s uncached (O_DIRECT), {cached:.3f} s cached"
          if uncached else f"read the same bytes from disk: {cached:.3f} s cached")
    if uncached:
        print(f"cold install / uncached read: {install / uncached:.1f}x; warm start / uncached read: "
              f"{warm / uncached:.1f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
