"""The dataset contract every loader and the synthetic generator follow.

A dataset is a sequence (``len`` + ``__getitem__``) of samples; a sample is a dict of numpy
arrays (no torch here: methods turn samples into tensors with depth_nodes.core.preprocess,
the same code the nodes run). Keys, present when the dataset has them:

- ``rgb``: (H, W, 3) uint8, left/reference camera, RGB order
- ``depth``: (H, W) float32 metres, NaN where unknown
- ``right``: (H, W, 3) uint8, rectified right view of a stereo pair
- ``disparity``: (H, W) float32 pixels of the left view (x_right = x_left - d), NaN unknown
- ``nir``: (H, W) uint8 near-infrared image, registered to ``rgb``
- ``semidense_mask``: (H, W) bool, pixels a semi-dense SLAM would reconstruct
- ``camera``: depth_nodes.core.camera.CameraIntrinsics of ``rgb``
- ``baseline``: float, stereo baseline in metres
- ``name``: str, a stable id of the sample (file stem, index, seed)

Optional keys of particular datasets:

- ``disparity_offset``: float px, cx_right - cx_left of a pair whose principal points
  differ (Middlebury's doffs): depth = fx * baseline / (disparity + disparity_offset)
- ``right_nir``: (H, W) uint8 NIR image of the right camera of an RGB (left) / NIR (right)
  rectified rig (PittsStereo-RGBNIR), not registered to ``rgb``
- ``semidense_depth``: (h, w) float32 metres, NaN unknown: semi-dense depth a SLAM
  recorded for this frame (rosbag ``semidense`` role), the same field of view as ``depth``
- ``stamp``: float seconds since the first frame of a sequence (synthetic sequences)
- ``pose``: (4, 4) float64 world_from_camera (optical frame) transform (synthetic sequences)
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

Sample = dict[str, Any]

SPLITS = ('train', 'val', 'test')


class DepthDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


# name -> factory(split: str, root: str | None, **options) -> DepthDataset
DATASETS: dict[str, Callable[..., DepthDataset]] = {}


def register_dataset(name: str):
    """Decorator adding a dataset factory (class or function) to DATASETS."""
    def wrap(factory):
        if name in DATASETS:
            raise ValueError(f'dataset {name!r} registered twice')
        DATASETS[name] = factory
        return factory
    return wrap


def build_dataset(name: str, split: str, root: str | None = None, **options) -> DepthDataset:
    """Open dataset ``name`` for ``split``; options are the dataset's own keyword arguments."""
    import training.datasets  # noqa: F401  (registers every loader)
    if split not in SPLITS:
        raise ValueError(f'split {split!r} not in {SPLITS}')
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f'unknown dataset {name!r}; known: {sorted(DATASETS)}') from None
    return factory(split=split, root=root, **options)
