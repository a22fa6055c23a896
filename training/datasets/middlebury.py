"""Middlebury 2014 stereo (Scharstein et al., GCPR 2014) and its "motorcycle" pair bundled
with scikit-image, the real held-out sample every machine can run.

A scene directory (e.g. Motorcycle-perfect/) holds im0.png (left), im1.png (right),
disp0.pfm (left disparity, inf = unknown) and calib.txt:

    cam0=[f 0 cx0; 0 f cy; 0 0 1]   cam1=[f 0 cx1; 0 f cy; 0 0 1]   doffs=cx1-cx0
    baseline=<mm>   width=   height=   ndisp=   ...

The two principal points differ by doffs, so depth = baseline * f / (d + doffs) (in mm
when the baseline is); a sample carries d as ``disparity`` (x_right = x_left - d) and
doffs as ``disparity_offset``.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, read_rgb, require_file,
                                             require_root)

# skimage.data.stereo_motorcycle(): Middlebury 2014 Motorcycle downsampled 4x to 741x500;
# the calibration of that resolution from scikit-image's documentation.
MOTORCYCLE = {'f': 994.978, 'cx': 311.193, 'cy': 254.877, 'doffs': 31.086,
              'baseline_mm': 193.001}


def read_pfm(path: Path) -> np.ndarray:
    """Portable float map -> float32 (H, W) or (H, W, 3), top row first.

    Header: 'Pf' (grey) or 'PF' (colour), 'width height', then a scale whose sign gives
    the byte order (negative = little-endian); rows are stored bottom to top.
    """
    with open(require_file(path, 'PFM file'), 'rb') as stream:
        kind = stream.readline().strip()
        if kind not in (b'Pf', b'PF'):
            raise ValueError(f'{path} is not a PFM file (header {kind!r})')
        dims = re.fullmatch(rb'\s*(\d+)\s+(\d+)\s*', stream.readline())
        if dims is None:
            raise ValueError(f'{path}: malformed PFM size line')
        width, height = int(dims[1]), int(dims[2])
        scale = float(stream.readline().strip())
        channels = 3 if kind == b'PF' else 1
        dtype = np.dtype('<f4' if scale < 0 else '>f4')
        data = np.frombuffer(stream.read(), dtype=dtype)
    if data.size != width * height * channels:
        raise ValueError(f'{path}: expected {width * height * channels} floats, '
                         f'found {data.size}')
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def write_pfm(path: Path, image: np.ndarray, little_endian: bool = True) -> None:
    """Write float32 (H, W) or (H, W, 3) as PFM (rows bottom to top)."""
    image = np.asarray(image, dtype=np.float32)
    kind = b'PF' if image.ndim == 3 else b'Pf'
    dtype = '<f4' if little_endian else '>f4'
    scale = -1.0 if little_endian else 1.0
    with open(path, 'wb') as stream:
        stream.write(kind + b'\n' + f'{image.shape[1]} {image.shape[0]}\n'.encode()
                     + f'{scale}\n'.encode())
        stream.write(np.flipud(image).astype(dtype).tobytes())


def read_calib(path: Path) -> dict:
    """calib.txt -> {'cam0': 3x3, 'cam1': 3x3, 'doffs': float, 'baseline': float (mm), ...}"""
    calib = {}
    for line in require_file(path, 'Middlebury calib.txt').read_text().splitlines():
        key, sep, value = line.partition('=')
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if value.startswith('['):
            rows = [[float(x) for x in row.split()] for row in value.strip('[]').split(';')]
            calib[key] = np.array(rows)
        else:
            calib[key] = float(value)
    for key in ('cam0', 'cam1', 'doffs', 'baseline'):
        if key not in calib:
            raise DatasetLayoutError(f'{path} lacks {key}=')
    return calib


def middlebury_depth(disparity: np.ndarray, f: float, baseline_m: float, doffs: float
                     ) -> np.ndarray:
    """Z = B f / (d + doffs), metres; unknown (non-finite) disparity -> NaN."""
    depth = np.full(disparity.shape, np.nan, np.float32)
    valid = np.isfinite(disparity) & (disparity + doffs > 0)
    depth[valid] = np.float32(baseline_m * f) / (disparity[valid] + np.float32(doffs))
    return depth


def stereo_sample(left, right, disparity, f, cx, cy, doffs, baseline_m, name) -> Sample:
    disparity = np.where(np.isfinite(disparity), disparity, np.nan).astype(np.float32)
    height, width = left.shape[:2]
    camera = CameraIntrinsics(width, height, f, f, cx, cy)
    return {'rgb': left, 'right': right, 'disparity': disparity,
            'depth': middlebury_depth(disparity, f, baseline_m, doffs), 'camera': camera,
            'baseline': baseline_m, 'disparity_offset': float(doffs), 'name': name}


@register_dataset('middlebury')
class Middlebury2014:
    """Scenes with ground truth under ``root``. Middlebury is an evaluation set: split
    'test' has every scene (or ``scenes``); train/val need an explicit ``scenes`` list.
    ``downscale`` (integer) shrinks images (area), disparity (nearest, divided) and the
    calibration by that factor."""

    def __init__(self, split: str, root: str | None = None, *, scenes: list[str] | None = None,
                 downscale: int = 1):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        self.root = require_root(root, 'middlebury', 'Middlebury 2014 scene directories')
        if scenes is None:
            if split != 'test':
                raise ValueError("middlebury is an evaluation set: split 'test' holds every "
                                 f"scene; for {split!r} pass scenes=[...]")
            self.scenes = sorted(p.parent for p in self.root.glob('*/disp0.pfm'))
            if not self.scenes:
                raise DatasetLayoutError(f'no Middlebury scenes (<scene>/disp0.pfm) in '
                                         f'{self.root}')
        else:
            self.scenes = [self.root / s for s in scenes]
        if int(downscale) < 1:
            raise ValueError(f'downscale must be a positive integer, got {downscale}')
        self.downscale = int(downscale)

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Sample:
        scene = self.scenes[index]
        calib = read_calib(scene / 'calib.txt')
        left = read_rgb(scene / 'im0.png', 'Middlebury left image im0.png')
        right = read_rgb(scene / 'im1.png', 'Middlebury right image im1.png')
        disparity = read_pfm(scene / 'disp0.pfm')
        if disparity.shape != left.shape[:2]:
            raise ValueError(f'{scene}: disp0.pfm {disparity.shape} does not match im0 '
                             f'{left.shape[:2]}')
        k = calib['cam0']
        f, cx, cy, doffs = k[0, 0], k[0, 2], k[1, 2], calib['doffs']
        s = self.downscale
        if s > 1:
            size = (left.shape[1] // s, left.shape[0] // s)
            left = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
            right = cv2.resize(right, size, interpolation=cv2.INTER_AREA)
            disparity = cv2.resize(disparity, size, interpolation=cv2.INTER_NEAREST) / s
            # Pixel centres: x' + 0.5 = (x + 0.5) / s.
            f, cx, cy, doffs = f / s, (cx + 0.5) / s - 0.5, (cy + 0.5) / s - 0.5, doffs / s
        return stereo_sample(left, right, disparity, f, cx, cy, doffs,
                             calib['baseline'] / 1000.0, f'middlebury/{scene.name}')


@register_dataset('middlebury_motorcycle')
class MiddleburyMotorcycle:
    """scikit-image's Motorcycle pair (741x500): split 'test' is this one real sample."""

    def __init__(self, split: str, root: str | None = None):
        if split != 'test':
            raise ValueError(f"middlebury_motorcycle has one sample, in split 'test' "
                             f"(asked for {split!r})")
        if root is not None:
            raise ValueError('middlebury_motorcycle comes with scikit-image; it takes no root')

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Sample:
        if index not in (0, -1):
            raise IndexError(f'middlebury_motorcycle has 1 sample, asked for {index}')
        try:
            from skimage.data import stereo_motorcycle
        except ImportError as exc:    # pragma: no cover - scikit-image is a requirement
            raise ImportError('middlebury_motorcycle needs scikit-image') from exc
        left, right, disparity = stereo_motorcycle()
        # scikit-image's docstring describes the offset as x_left = x_right + d and marks
        # unknowns as NaN; the data follows Middlebury (x_right = x_left - d, unknown = inf).
        m = MOTORCYCLE
        return stereo_sample(np.ascontiguousarray(left), np.ascontiguousarray(right),
                             disparity, m['f'], m['cx'], m['cy'], m['doffs'],
                             m['baseline_mm'] / 1000.0, 'middlebury_motorcycle/Motorcycle')
