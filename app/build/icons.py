"""The app's PNG icons, drawn with numpy and encoded by hand (no imaging library for three small squares).

The design is full-bleed (a ring and a beacon dot on the theme colour), so the same picture works as a "maskable"
icon: everything that matters sits inside the central 80 % safe zone.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

THEME = (15, 76, 92)  # #0f4c5c, also theme_color in the web app manifest
FOREGROUND = (255, 255, 255)
ACCENT = (244, 162, 97)  # #f4a261


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray) -> bytes:
    """uint8 [h, w, 3] -> PNG bytes (8-bit RGB, no filter)."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def draw_icon(size: int) -> np.ndarray:
    """A ring with a dot: a signal on the horizon. Anti-aliased by 4x4 supersampling."""
    ss = 4
    n = size * ss
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    c = (n - 1) / 2
    r = np.hypot(x - c, y - c) / n  # distance from the centre, in icon widths
    ring = ((r > 0.22) & (r < 0.30)).astype(np.float32)
    dot = (r < 0.09).astype(np.float32)

    def down(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(size, ss, size, ss).mean(axis=(1, 3))[..., None]

    ring_a, dot_a = down(ring), down(dot)
    img = np.empty((size, size, 3), np.float32)
    img[:] = THEME
    img = img * (1 - ring_a) + np.array(FOREGROUND, np.float32) * ring_a
    img = img * (1 - dot_a) + np.array(ACCENT, np.float32) * dot_a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


ICON_SIZES = (192, 512)


def icon_files() -> dict[str, bytes]:
    """dist path -> PNG bytes."""
    return {f"icons/icon-{s}.png": encode_png(draw_icon(s)) for s in ICON_SIZES}
