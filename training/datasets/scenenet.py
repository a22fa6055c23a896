"""SceneNet RGB-D (McCormac et al.; https://robotvault.bitbucket.io/scenenet-rgbd.html).

Layout of the release (pySceneNetRGBD README):

    <root>/<train|val>/<shard>/<trajectory>/photo/<frame>.jpg    (frame = 0, 25, 50, ...)
    <root>/<train|val>/<shard>/<trajectory>/depth/<frame>.png    (uint16 millimetres)

The depth PNGs hold the Euclidean ray length from the camera centre, not z; the loader
converts to z-depth (REP 118) with z = L / sqrt(1 + x^2 + y^2), x, y the normalised pixel
coordinates. Renders are 320x240 with a 60 x 45 degree field of view (the paper's 40 is a
typo, see the README), principal point at (160, 120) as in the authors' own intrinsics.
The public release has train and val only: ``split_dirs`` maps our splits to directories
(default train -> train, val -> val, test -> test; e.g. {'test': 'val'}).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, pixel_rays
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, read_depth_png, read_rgb,
                                             require_dir, require_root)

SCENENET_CAMERA = CameraIntrinsics(320, 240, 160.0 / math.tan(math.radians(30.0)),
                                   120.0 / math.tan(math.radians(22.5)), 160.0, 120.0)


def ray_length_to_z(length: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """Distance along each pixel's ray -> depth along the optical axis."""
    rx, ry = pixel_rays(camera)
    return (length / np.sqrt(1.0 + rx * rx + ry * ry)).astype(np.float32)


@register_dataset('scenenet')
class SceneNetRGBD:
    """Samples: rgb (240, 320, 3), depth (z in metres, NaN = none), camera, name."""

    def __init__(self, split: str, root: str | None = None, *,
                 split_dirs: dict[str, str] | None = None):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        base = require_root(root, 'scenenet', 'the SceneNet RGB-D release (train/, val/)')
        directory = {**{s: s for s in SPLITS}, **(split_dirs or {})}[split]
        part = require_dir(base / directory, f'SceneNet RGB-D {split} directory')
        trajectories = sorted({p.parent for p in part.glob('*/*/photo')}
                              | {p.parent for p in part.glob('*/photo')})
        self.frames: list[tuple[Path, int]] = []
        for trajectory in trajectories:
            numbers = sorted(int(p.stem) for p in (trajectory / 'photo').glob('*.jpg'))
            self.frames += [(trajectory, n) for n in numbers]
        if not self.frames:
            raise DatasetLayoutError(f'no SceneNet frames (<trajectory>/photo/<n>.jpg) '
                                     f'under {part}')

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        trajectory, number = self.frames[index]
        rgb = read_rgb(trajectory / 'photo' / f'{number}.jpg', 'SceneNet photo')
        length = read_depth_png(trajectory / 'depth' / f'{number}.png', 1e-3,
                                'SceneNet depth PNG (mm)')
        camera = SCENENET_CAMERA
        if rgb.shape[:2] != (camera.height, camera.width) or length.shape != rgb.shape[:2]:
            raise ValueError(f'{trajectory} frame {number}: expected 320x240 photo and depth, '
                             f'got {rgb.shape[1::-1]} and {length.shape[::-1]}')
        return {'rgb': rgb, 'depth': ray_length_to_z(length, camera), 'camera': camera,
                'name': f'scenenet/{trajectory.parent.name}/{trajectory.name}/{number}'}
