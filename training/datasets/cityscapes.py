"""Cityscapes (Cordts et al., CVPR 2016): rectified stereo pairs of city streets, the second
training set of stereo-trained depth (Godard et al.; Shen et al.).

Layout of the release (https://www.cityscapes-dataset.com, packages leftImg8bit,
rightImg8bit, camera, disparity):

    <root>/leftImg8bit/<folder>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/rightImg8bit/<folder>/<city>/<city>_<seq>_<frame>_rightImg8bit.png
    <root>/camera/<folder>/<city>/<city>_<seq>_<frame>_camera.json
        {"extrinsic": {"baseline": B (m), ...}, "intrinsic": {"fx", "fy", "u0", "v0"}}
    <root>/disparity/<folder>/<city>/<city>_<seq>_<frame>_disparity.png
        16-bit, d = (p - 1) / 256 pixels for p > 0, 0 = invalid (SGM output, not ground truth)

``folders``: the release folders that make up the split (default: the folder of the same
name; Godard et al. train on train + train_extra). ``bottom_crop``: the fraction of rows
removed at the bottom, where the ego car's bonnet is (20 % in Godard et al.). Samples carry
rgb, right, camera, baseline and, when the disparity file exists, disparity and depth
(fx B / d).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, read_rgb, require_dir,
                                             require_file, require_root)

LEFT_SUFFIX = '_leftImg8bit.png'


def read_cityscapes_disparity(path: Path) -> np.ndarray:
    """16-bit disparity PNG -> float32 pixels, NaN where invalid (p = 0)."""
    raw = cv2.imread(str(require_file(path, 'Cityscapes disparity PNG')), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel 16-bit disparity PNG')
    disparity = (raw.astype(np.float32) - 1.0) / 256.0
    disparity[raw == 0] = np.nan
    return disparity


def read_cityscapes_camera(path: Path, width: int, height: int
                           ) -> tuple[CameraIntrinsics, float]:
    """camera.json -> (intrinsics of the image, baseline in metres)."""
    try:
        data = json.loads(require_file(path, 'Cityscapes camera.json').read_text())
        intrinsic, baseline = data['intrinsic'], float(data['extrinsic']['baseline'])
        camera = CameraIntrinsics(width, height, float(intrinsic['fx']), float(intrinsic['fy']),
                                  float(intrinsic['u0']), float(intrinsic['v0']))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f'{path}: not a Cityscapes camera file ({exc})') from None
    return camera, baseline


@register_dataset('cityscapes')
class CityscapesStereo:
    """Stereo pairs of the release folders ``folders`` (default: the split's own)."""

    def __init__(self, split: str, root: str | None = None, *,
                 folders: Sequence[str] | None = None, bottom_crop: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        if not 0.0 <= bottom_crop < 1.0:
            raise ValueError(f'bottom_crop is a fraction of the rows in [0, 1), got '
                             f'{bottom_crop}')
        self.root = require_root(root, 'cityscapes', 'the Cityscapes release (leftImg8bit/, '
                                 'rightImg8bit/, camera/, disparity/)')
        self.bottom_crop = float(bottom_crop)
        self.frames: list[tuple[str, Path]] = []
        for folder in (folders or (split,)):
            left_dir = require_dir(self.root / 'leftImg8bit' / folder,
                                   f'Cityscapes leftImg8bit/{folder}')
            self.frames += [(folder, p) for p in sorted(left_dir.glob(f'*/*{LEFT_SUFFIX}'))]
        if not self.frames:
            raise DatasetLayoutError(f'no Cityscapes left images (*{LEFT_SUFFIX}) under '
                                     f'{self.root / "leftImg8bit"} for {list(folders or [split])}')

    def __len__(self) -> int:
        return len(self.frames)

    def _path(self, package: str, folder: str, left: Path, suffix: str) -> Path:
        stem = left.name[:-len(LEFT_SUFFIX)]
        return self.root / package / folder / left.parent.name / f'{stem}_{suffix}'

    def __getitem__(self, index: int) -> Sample:
        folder, left_path = self.frames[index]
        rgb = read_rgb(left_path, 'Cityscapes left image')
        right = read_rgb(self._path('rightImg8bit', folder, left_path, 'rightImg8bit.png'),
                         'Cityscapes right image')
        if right.shape != rgb.shape:
            raise ValueError(f'{left_path}: right image {right.shape} differs from left '
                             f'{rgb.shape}')
        height, width = rgb.shape[:2]
        camera, baseline = read_cityscapes_camera(
            self._path('camera', folder, left_path, 'camera.json'), width, height)
        sample = {'rgb': rgb, 'right': right, 'camera': camera, 'baseline': baseline,
                  'name': f'cityscapes/{folder}/{left_path.name[:-len(LEFT_SUFFIX)]}'}
        disparity_path = self._path('disparity', folder, left_path, 'disparity.png')
        if disparity_path.is_file():
            disparity = read_cityscapes_disparity(disparity_path)
            if disparity.shape != (height, width):
                raise ValueError(f'{disparity_path}: {disparity.shape} differs from the '
                                 f'image {(height, width)}')
            with np.errstate(divide='ignore', invalid='ignore'):
                depth = np.where(disparity > 0, np.float32(camera.fx * baseline) / disparity,
                                 np.nan).astype(np.float32)
            sample.update(disparity=disparity, depth=depth)
        keep = height - int(round(self.bottom_crop * height))
        if keep < height:
            for key in ('rgb', 'right', 'disparity', 'depth'):
                if key in sample:
                    sample[key] = np.ascontiguousarray(sample[key][:keep])
            sample['camera'] = CameraIntrinsics(width, keep, camera.fx, camera.fy, camera.cx,
                                                camera.cy)
        return sample
