"""A tiny deterministic dataset following training/datasets/base.py, for trainer tests.

Each sample is a corridor-like depth ramp (far at the top, near at the bottom) with a nearer
box, and an RGB image whose brightness falls with depth, so a network has something to
learn. The top row has no ground truth (NaN), as real sensors leave holes.
Registered as ``test_fake_rooms`` (options: size, height, width, constant_depth).
"""
from __future__ import annotations

import numpy as np

from training.datasets.base import DATASETS, SPLITS, register_dataset

NAME = 'test_fake_rooms'


class FakeRooms:
    def __init__(self, split: str = 'train', root=None, *, size: int = 8, height: int = 60,
                 width: int = 80, constant_depth: float | None = None):
        self.split, self.size = split, size
        self.height, self.width = height, width
        self.constant_depth = constant_depth

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(index)
        rng = np.random.default_rng([SPLITS.index(self.split), index])
        h, w = self.height, self.width
        rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        depth = np.repeat(6.0 - 4.5 * rows, w, axis=1) * np.float32(rng.uniform(0.8, 1.2))
        top, left = rng.integers(h // 4, h // 2), rng.integers(0, w // 2)
        depth[top:top + h // 3, left:left + w // 3] *= np.float32(0.6)
        if self.constant_depth is not None:
            depth[:] = self.constant_depth
        shade = 255.0 / (1.0 + depth)[..., None] * np.array([1.0, 0.9, 0.8], np.float32)
        rgb = np.clip(shade + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
        depth = depth.astype(np.float32)
        depth[0] = np.nan
        return {'rgb': rgb, 'depth': depth, 'name': f'{NAME}/{self.split}/{index}'}


if NAME not in DATASETS:
    register_dataset(NAME)(FakeRooms)
