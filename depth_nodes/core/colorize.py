"""Depth -> colour images for RViz and for people (turbo colour map)."""
from __future__ import annotations

import cv2
import numpy as np


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float,
                   invalid_rgb=(0, 0, 0)) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB with the turbo map, near = red, far = blue.

    Inverse depth is coloured (linear in 1/Z between the range limits), which spends the
    colour range where depth changes matter most for a camera: close to it. NaN and
    out-of-range pixels get ``invalid_rgb``.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got {min_depth}, {max_depth}')
    valid = np.isfinite(depth) & (depth >= min_depth) & (depth <= max_depth)
    inv_near, inv_far = 1.0 / min_depth, 1.0 / max_depth
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (1.0 / depth - inv_far) / (inv_near - inv_far)
    level = np.where(valid, np.clip(t, 0.0, 1.0) * 255.0, 0.0).astype(np.uint8)
    rgb = cv2.applyColorMap(level, cv2.COLORMAP_TURBO)[:, :, ::-1]
    rgb = np.ascontiguousarray(rgb)
    rgb[~valid] = invalid_rgb
    return rgb
