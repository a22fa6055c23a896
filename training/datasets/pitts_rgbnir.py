"""PittsStereo-RGBNIR (Zhi et al., "Deep material-aware cross-spectral stereo matching",
CVPR 2018): a rectified stereo rig whose left camera is RGB and right camera is NIR.

Assumed layout (from the authors' released loaders; the dataset page does not spell it out):

    <root>/lists/<split>.txt      lines "<collection> <key> [rgb_exposure nir_exposure ...]"
    <root>/data/<collection>/RGBResize/<key>_RGBResize.png     left, RGB, 582x429
    <root>/data/<collection>/NIRResize/<key>_NIRResize.png     right, NIR
    <root>/data/<collection>/Keypoint/<key>_Keypoint.txt       test frames only:
        lines "x y d material", x, y and d as fractions of the image width/height/width

The keypoints are the sparse ground truth of the test set: left-view disparities at
hand-labelled points; the loader turns them into a ``disparity`` map that is NaN except
there (pixel = round(x * W) - 1, as the authors' evaluation code does). The test lists are
released per collection: pass them with ``list_files``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.dataset_files import read_gray, read_rgb, require_file, require_root


def read_keypoints(path: Path, width: int, height: int) -> np.ndarray:
    """Keypoint file -> (H, W) float32 left-view disparity in pixels, NaN elsewhere."""
    disparity = np.full((height, width), np.nan, np.float32)
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise ValueError(f'{path}:{number}: expected "x y d material", got {line!r}')
        x, y, d = (float(f) for f in fields[:3])
        col = min(max(int(round(x * width)) - 1, 0), width - 1)
        row = min(max(int(round(y * height)) - 1, 0), height - 1)
        disparity[row, col] = d * width
    return disparity


@register_dataset('pitts_rgbnir')
class PittsStereoRGBNIR:
    """Samples: rgb (left), right_nir (right, NIR), name; disparity where keypoints exist."""

    def __init__(self, split: str, root: str | None = None, *,
                 list_files: list[str] | None = None):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        self.root = require_root(root, 'pitts_rgbnir', 'PittsStereo-RGBNIR (lists/, data/)')
        paths = [Path(p) for p in list_files] if list_files else \
            [self.root / 'lists' / f'{split}.txt']
        self.records: list[tuple[str, str]] = []
        for path in paths:
            for number, line in enumerate(require_file(path, 'PittsStereo-RGBNIR list file')
                                          .read_text().splitlines(), 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 2:
                    raise ValueError(f'{path}:{number}: expected "<collection> <key> ...", '
                                     f'got {line!r}')
                self.records.append((fields[0], fields[1]))

    def __len__(self) -> int:
        return len(self.records)

    def _path(self, collection: str, key: str, kind: str, ext: str = 'png') -> Path:
        return self.root / 'data' / collection / kind / f'{key}_{kind}.{ext}'

    def __getitem__(self, index: int) -> Sample:
        collection, key = self.records[index]
        rgb = read_rgb(self._path(collection, key, 'RGBResize'), 'PittsStereo RGB image')
        nir = read_gray(self._path(collection, key, 'NIRResize'), 'PittsStereo NIR image')
        if nir.shape != rgb.shape[:2]:
            raise ValueError(f'{collection}/{key}: NIR {nir.shape} and RGB {rgb.shape[:2]} '
                             f'differ in size')
        sample = {'rgb': rgb, 'right_nir': nir, 'name': f'pitts_rgbnir/{collection}/{key}'}
        keypoints = self._path(collection, key, 'Keypoint', 'txt')
        if keypoints.is_file():
            sample['disparity'] = read_keypoints(keypoints, rgb.shape[1], rgb.shape[0])
        return sample
