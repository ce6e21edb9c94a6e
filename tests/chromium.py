"""Debian's Chromium as every browser test launches it (never `playwright install`: it downloads)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# no background traffic: the machine has no network but the package registries, and tests record every request
BASE_ARGS = ["--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-quic"]
WEBGPU_ARGS = [*BASE_ARGS, "--enable-unsafe-webgpu"]  # WebGPU on SwiftShader; without it: no adapter
