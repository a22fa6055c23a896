"""Depth -> colour images for RViz and for people (turbo colour map)."""
from __future__ import annotations

import functools

import cv2
import numpy as np

LEVELS = 255          # colour levels; index 255 of the lookup table is the invalid colour


@functools.lru_cache(maxsize=8)
def _turbo_lut(invalid_rgb: tuple[int, int, int]) -> np.ndarray:
    """(256, 1, 3) uint8 RGB lookup table for cv2.LUT: LEVELS turbo colours (0 = far, blue;
    254 = near, red) and ``invalid_rgb`` at 255. cv2.applyColorMap builds its colour map
    on every call, which costs far more than the lookup itself; this table is built once."""
    turbo = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None],
                              cv2.COLORMAP_TURBO)[:, 0, ::-1]          # BGR -> RGB
    lut = np.empty((256, 1, 3), np.uint8)
    lut[:LEVELS, 0] = turbo[np.rint(np.arange(LEVELS) * 255.0 / (LEVELS - 1)).astype(int)]
    lut[LEVELS, 0] = invalid_rgb
    return lut


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float,
                   invalid_rgb=(0, 0, 0)) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB with the turbo map, near = red, far = blue.

    Inverse depth is coloured (linear in 1/Z between the range limits), which spends the
    colour range where depth changes matter most for a camera: close to it. NaN and
    out-of-range pixels get ``invalid_rgb``.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got {min_depth}, {max_depth}')
    depth = np.asarray(depth, dtype=np.float32)
    # NaN and +-inf fail both comparisons: no separate isfinite pass.
    valid = (depth >= np.float32(min_depth)) & (depth <= np.float32(max_depth))
    inv_near, inv_far = 1.0 / min_depth, 1.0 / max_depth
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (np.float32(1.0) / depth - np.float32(inv_far)) * np.float32(
            (LEVELS - 1) / (inv_near - inv_far))
    np.clip(t, 0.0, LEVELS - 1, out=t)
    level = np.where(valid, t + np.float32(0.5), np.float32(LEVELS)).astype(np.uint8)
    lut = _turbo_lut(tuple(int(c) for c in invalid_rgb))
    return cv2.LUT(cv2.merge((level, level, level)), lut)
