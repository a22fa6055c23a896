"""NYU Depth v2, labeled subset: nyu_depth_v2_labeled.mat (MATLAB v7.3, i.e. HDF5).

The file holds 1449 registered RGB-D pairs at 640x480: ``images`` (1449, 3, 640, 480) uint8
and ``depths`` (1449, 640, 480) float32 metres (holes filled by colourisation; the
measured ones are ``rawDepths``, 0 = no return). MATLAB writes arrays column-major, so
h5py sees every array transposed: images[i] is (C, W, H) and goes back to (H, W, C).

Splits as in the contrastive CycleGAN paper (Suarez et al.): the first 1000 pairs train,
the last 449 test; ``val_size`` pairs at the end of the training part form val (default
100; val_size=0 keeps the paper's 1000 training pairs). Options after Eigen et al.:
``eigen_resize`` halves to 320x240, ``eigen_crop`` then keeps the centre 304x228.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.augment import crop_intrinsics
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import (DatasetLayoutError, carve_validation,
                                             require_file, require_root)

MAT_FILE = 'nyu_depth_v2_labeled.mat'
TRAIN_COUNT = 1000
# Colour camera of the NYU toolbox (camera_params.m), for the 640x480 registered frames.
NYU_CAMERA = CameraIntrinsics(640, 480, 518.857901, 519.469611, 325.582449, 253.736166)
EIGEN_SIZE = (320, 240)      # width, height after Eigen et al.'s 2x downsampling
EIGEN_CROP = (304, 228)      # their network input: the centre crop


@register_dataset('nyu_v2')
class NYUDepthV2Labeled:
    """Samples: rgb (480, 640, 3), depth (metres, NaN = none), camera, name."""

    def __init__(self, split: str, root: str | None = None, *, mat_file: str = MAT_FILE,
                 val_size: int = 100, train_count: int = TRAIN_COUNT,
                 raw_depth: bool = False, eigen_resize: bool = False, eigen_crop: bool = False):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        base = require_root(root, 'nyu_v2', f'a directory with {mat_file} (or the file)')
        self.path = require_file(base if base.is_file() else base / mat_file,
                                 'NYU Depth v2 labeled .mat file')
        self.depth_key = 'rawDepths' if raw_depth else 'depths'
        import h5py
        try:
            with h5py.File(self.path, 'r') as mat:
                for key in ('images', self.depth_key):
                    if key not in mat:
                        raise DatasetLayoutError(f'{self.path} has no {key!r} array '
                                                 f'(keys: {sorted(mat.keys())})')
                count = mat['images'].shape[0]
        except OSError as exc:
            raise ValueError(f'{self.path} is not a MATLAB v7.3 (HDF5) file: {exc}') from exc
        if not 0 < train_count < count:
            raise ValueError(f'train_count {train_count} must leave test pairs in {count}')
        train = list(range(train_count))
        self.indices = (list(range(train_count, count)) if split == 'test'
                        else carve_validation(train, split, val_size))
        if eigen_crop and not eigen_resize:
            raise ValueError('eigen_crop is the 304x228 centre of the 320x240 eigen_resize '
                             'image: set eigen_resize too')
        self.split, self.eigen_resize, self.eigen_crop = split, eigen_resize, eigen_crop
        self._mat = None   # opened lazily in each process (h5py handles do not pickle)

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):
        return {**self.__dict__, '_mat': None}

    def __getitem__(self, index: int) -> Sample:
        if self._mat is None:
            import h5py
            self._mat = h5py.File(self.path, 'r')
        i = self.indices[index]
        rgb = np.ascontiguousarray(self._mat['images'][i].transpose(2, 1, 0))
        depth = np.ascontiguousarray(self._mat[self.depth_key][i].T, dtype=np.float32)
        depth[~(depth > 0)] = np.nan
        camera = NYU_CAMERA.scaled(rgb.shape[1], rgb.shape[0]) \
            if rgb.shape[:2] != (NYU_CAMERA.height, NYU_CAMERA.width) else NYU_CAMERA
        if self.eigen_resize:
            rgb = cv2.resize(rgb, EIGEN_SIZE, interpolation=cv2.INTER_AREA)
            # Nearest for depth: averaging across an object boundary invents a surface.
            depth = cv2.resize(depth, EIGEN_SIZE, interpolation=cv2.INTER_NEAREST)
            camera = camera.scaled(*EIGEN_SIZE)
        if self.eigen_crop:
            x0 = (EIGEN_SIZE[0] - EIGEN_CROP[0]) // 2
            y0 = (EIGEN_SIZE[1] - EIGEN_CROP[1]) // 2
            rgb = rgb[y0:y0 + EIGEN_CROP[1], x0:x0 + EIGEN_CROP[0]].copy()
            depth = depth[y0:y0 + EIGEN_CROP[1], x0:x0 + EIGEN_CROP[0]].copy()
            camera = crop_intrinsics(camera, x0, y0, *EIGEN_CROP)
        return {'rgb': rgb, 'depth': depth, 'camera': camera,
                'name': f'nyu_v2/{Path(self.path).stem}/{i:04d}'}
