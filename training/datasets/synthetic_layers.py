"""Layered slanted planes: cheap geometric variety for depth densification (semidense).

Each sample is a perspective view of a stack of planar layers: a slanted background and
3-14 shapes in front of it (convex polygons, ellipses, long thin bars and poles, a few
pixels wide), each on its own slanted plane, composited with a z-buffer, so occlusion edges,
thin structures and slopes of every orientation appear at random. A plane seen by a pinhole
camera has inverse depth affine in the image coordinates, 1/d = a + b x + c y, so each layer's
depth is exact and costs a few array operations. The whole view sits at a scale drawn
log-uniformly from 0.3 to 80 m (the scale-free semidense model does not care, the others
do). Surfaces take the synthetic scenes' texture tiles (training/datasets/synthetic_textures)
with random tints, scales and rotations, some share their background's texture (a depth edge
with no intensity edge) and some get texture edges with no depth edge.

``scenes_fraction`` of the samples (a deterministic subset) are the procedural rooms and
streets of the 'synthetic' dataset instead, at the same size.
"""
from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.synthetic_textures import RGB, texture_bank

DEFAULT_SIZE = {'train': 2000, 'val': 200, 'test': 200}
SCALE_RANGE = (0.3, 80.0)    # metres: the median depth of a view, drawn log-uniformly


def _plane(rng, x, y, inverse_depth: float, max_tilt: float) -> np.ndarray:
    """Inverse depth of a slanted plane through ``inverse_depth`` at a random point:
    1/d = q0 (1 + gx (x - x0) + gy (y - y0)), x, y normalised image coordinates."""
    gx, gy = rng.uniform(-max_tilt, max_tilt, 2)
    x0, y0 = rng.uniform(-0.5, 0.5, 2)
    return inverse_depth * (1.0 + gx * (x - x0) + gy * (y - y0))


def _shape_mask(rng, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    kind = rng.choice(['polygon', 'ellipse', 'bar', 'pole'], p=[0.4, 0.25, 0.2, 0.15])
    size = min(height, width)
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    if kind == 'polygon':
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.05, 0.4) * size * rng.uniform(0.6, 1.0, n)
        points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    elif kind == 'ellipse':
        axes = (int(rng.uniform(0.03, 0.3) * size), int(rng.uniform(0.03, 0.3) * size))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:   # thin structures: a bar (rail, cable) or a pole, 1-6 pixels wide
        length = rng.uniform(0.3, 1.5) * size
        angle = rng.uniform(0, np.pi) if kind == 'bar' else rng.normal(np.pi / 2, 0.1)
        dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
        cv2.line(mask, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1,
                 int(rng.integers(1, 7)))
    return mask.astype(bool)


def _texture(rng, bank, names, height: int, width: int) -> np.ndarray:
    """(H, W, 3) albedo: a bank tile, tinted, scaled and rotated, repeated over the view."""
    tile = bank[names[rng.integers(len(names))]][0][:, :, RGB]
    tint = rng.uniform(0.3, 1.0, 3)
    scale = float(np.exp(rng.uniform(np.log(0.3), np.log(4.0))))
    angle = rng.uniform(0, 360)
    matrix = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)
    matrix[:, 2] = rng.uniform(0, tile.shape[0], 2)
    return cv2.warpAffine(tile * tint, matrix, (width, height), flags=cv2.INTER_LINEAR |
                          cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP)


def render_layers(rng: np.random.Generator, height: int, width: int) -> Sample:
    """One layered view: rgb (H, W, 3) uint8, depth (H, W) float32 metres, camera."""
    bank = texture_bank()
    names = sorted(bank)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = (x - width / 2) / width, (y - height / 2) / width
    scale = float(np.exp(rng.uniform(*np.log(SCALE_RANGE))))
    # Background up to ~2.5x deeper than the median, slanted (a floor, a wall, a road).
    inverse = _plane(rng, x, y, 1.0 / (scale * rng.uniform(1.0, 2.5)), 1.2)
    inverse = np.maximum(inverse, 1.0 / (scale * 20.0))
    background = _texture(rng, bank, names, height, width)
    albedo = background.copy()
    for _ in range(int(rng.integers(3, 15))):
        mask = _shape_mask(rng, height, width)
        layer = _plane(rng, x, y, 1.0 / (scale * rng.uniform(0.3, 1.2)), 0.8)
        front = mask & (layer > inverse)
        if rng.random() < 0.15:   # same texture as the background: no intensity edge
            texture = background
        else:
            texture = _texture(rng, bank, names, height, width)
        inverse = np.where(front, layer, inverse)
        albedo[front] = texture[front]
    for _ in range(int(rng.integers(0, 4))):   # paint: an intensity edge, no depth edge
        mask = _shape_mask(rng, height, width)
        albedo[mask] *= rng.uniform(0.3, 1.5)
    light = 0.6 + 0.4 * rng.uniform(0.5, 1.0) * (1 + rng.uniform(-1, 1) * x
                                                 + rng.uniform(-1, 1) * y)
    image = np.clip(albedo * light[:, :, None] * rng.uniform(0.6, 1.4) +
                    rng.normal(0, rng.uniform(0.002, 0.02), albedo.shape), 0, 1)
    rgb = (255 * image ** (1 / 2.2) + 0.5).astype(np.uint8)
    f = 0.5 * width / np.tan(np.radians(rng.uniform(50, 90)) / 2)
    camera = CameraIntrinsics(width, height, fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2)
    return {'rgb': rgb, 'depth': (1.0 / inverse).astype(np.float32), 'camera': camera}


@register_dataset('synthetic_layers')
class SyntheticLayers:
    """Deterministic layered-plane views (module docstring); ``scenes_fraction`` of them are
    the 'synthetic' dataset's rooms and streets (scene 'mixed')."""

    def __init__(self, split: str, root: str | None = None, *, size: int | None = None,
                 height: int = 240, width: int = 320, seed: int = 0,
                 scenes_fraction: float = 0.0, outputs=('rgb', 'depth')):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        if root is not None:
            raise ValueError(f'synthetic_layers is generated, it has no root (got {root!r})')
        if not 0.0 <= scenes_fraction <= 1.0:
            raise ValueError(f'scenes_fraction must be in [0, 1], got {scenes_fraction}')
        self.split, self.seed = split, int(seed)
        self.size = DEFAULT_SIZE[split] if size is None else int(size)
        self.height, self.width = int(height), int(width)
        self.scenes_fraction = float(scenes_fraction)
        self._scenes = None
        if scenes_fraction > 0:
            from training.datasets.synthetic import SyntheticScenes
            self._scenes = SyntheticScenes(split, size=self.size, height=height, width=width,
                                           scene='mixed', seed=seed, outputs=tuple(outputs))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not -self.size <= index < self.size:
            raise IndexError(f'sample {index} out of range for {self.size} samples')
        index %= self.size
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLITS.index(self.split), int(index), 7]))
        if self._scenes is not None and rng.random() < self.scenes_fraction:
            return self._scenes[index]
        sample = render_layers(rng, self.height, self.width)
        sample['name'] = f'synthetic_layers/{self.split}/{index:06d}'
        return sample
