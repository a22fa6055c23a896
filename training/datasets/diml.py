"""DIML/CVL RGB-D dataset, indoor part (Cho et al., https://dimlrgbd.github.io).

Assumed layout (the public "indoor sample" release, as loaders in the wild read it; the
official pages do not document it, so this is checked against third-party code):

    <root>/indoor/<train|test>/<HR|LR>/<scene>/color/<name>_c.png
    <root>/indoor/<train|test>/<HR|LR>/<scene>/depth_filled/<name>_depth_filled.png

``root`` may also be the ``indoor`` directory itself. Depth PNGs are 16-bit millimetres
(0 = none). HR frames are 1344x756, LR 512x288 (Kinect v2 colour, resized). The release
carries no per-frame calibration, so samples have a ``camera`` only when ``intrinsics``
(fx, fy, cx, cy at the loaded resolution) is given. val = the last ``val_size`` training
frames (default 50).
"""
from __future__ import annotations

from pathlib import Path

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, carve_validation,
                                             read_depth_png, read_rgb, require_dir,
                                             require_root)


@register_dataset('diml')
class DIMLIndoor:
    """Samples: rgb, depth (metres, NaN = none), name, camera if ``intrinsics`` is set."""

    def __init__(self, split: str, root: str | None = None, *, resolution: str = 'LR',
                 val_size: int = 50, intrinsics: tuple[float, float, float, float] | None = None):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        if resolution not in ('HR', 'LR'):
            raise ValueError(f"resolution must be 'HR' or 'LR', got {resolution!r}")
        base = require_root(root, 'diml', 'the DIML RGB-D release (indoor/<split>/<HR|LR>/...)')
        indoor = base / 'indoor' if (base / 'indoor').is_dir() else base
        part = require_dir(indoor / ('test' if split == 'test' else 'train') / resolution,
                           f'DIML indoor {resolution} directory')
        frames = sorted(part.glob('*/color/*_c.png'))
        if not frames:
            raise DatasetLayoutError(f'no DIML colour frames (<scene>/color/*_c.png) in {part}')
        self.frames = frames if split == 'test' else carve_validation(frames, split, val_size)
        self.intrinsics = intrinsics

    def __len__(self) -> int:
        return len(self.frames)

    @staticmethod
    def depth_path(color_path: Path) -> Path:
        stem = color_path.name[:-len('_c.png')]
        return color_path.parent.parent / 'depth_filled' / f'{stem}_depth_filled.png'

    def __getitem__(self, index: int) -> Sample:
        color = self.frames[index]
        rgb = read_rgb(color, 'DIML colour image')
        depth = read_depth_png(self.depth_path(color), 1e-3, 'DIML depth PNG (mm)')
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f'{color}: depth {depth.shape} does not match colour '
                             f'{rgb.shape[:2]}')
        sample = {'rgb': rgb, 'depth': depth,
                  'name': f'diml/{color.parent.parent.name}/{color.stem}'}
        if self.intrinsics is not None:
            fx, fy, cx, cy = self.intrinsics
            sample['camera'] = CameraIntrinsics(rgb.shape[1], rgb.shape[0], fx, fy, cx, cy)
        return sample
