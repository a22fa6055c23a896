"""File helpers shared by the real-dataset loaders: existence checks whose errors name the
missing path, image and 16-bit depth readers, and carving a validation split."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

import cv2
import numpy as np

from training.datasets.base import SPLITS

T = TypeVar('T')


class DatasetLayoutError(FileNotFoundError):
    """A dataset directory does not have the files its loader expects."""


def require_root(root, dataset: str, expected: str) -> Path:
    if root is None:
        raise ValueError(f'{dataset} needs root=<directory>: {expected}')
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetLayoutError(f'{dataset}: root {path} does not exist ({expected})')
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetLayoutError(f'missing {what}: {path}')
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(f'missing {what}: {path}')
    return path


def read_rgb(path: Path, what: str = 'image') -> np.ndarray:
    """(H, W, 3) uint8 RGB (OpenCV reads BGR)."""
    image = cv2.imread(str(require_file(path, what)), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f'cannot decode {what} {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_gray(path: Path, what: str = 'image') -> np.ndarray:
    """(H, W) uint8, converting colour files to grey."""
    image = cv2.imread(str(require_file(path, what)), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f'cannot decode {what} {path}')
    return image


def read_depth_png(path: Path, metres_per_unit: float, what: str = 'depth PNG') -> np.ndarray:
    """A 16-bit depth PNG -> float32 metres, 0 (no measurement) -> NaN."""
    raw = cv2.imread(str(require_file(path, what)), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f'cannot decode {what} {path}')
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'{what} {path} must be a single-channel 16-bit PNG, got '
                         f'{raw.dtype} with shape {raw.shape}')
    depth = raw.astype(np.float32) * np.float32(metres_per_unit)
    depth[raw == 0] = np.nan
    return depth


def carve_validation(items: Sequence[T], split: str, val_size: int) -> list[T]:
    """Split a training list into train (all but the last ``val_size``) and val (those)."""
    if val_size < 0 or val_size >= max(len(items), 1):
        raise ValueError(f'val_size must be in [0, {len(items)}), got {val_size}')
    if split == 'val':
        if val_size == 0:
            raise ValueError('split "val" is empty: pass val_size > 0 to carve it from train')
        return list(items[len(items) - val_size:])
    if split == 'train':
        return list(items[:len(items) - val_size])
    raise ValueError(f'split {split!r} not in {SPLITS}')
