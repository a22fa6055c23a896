"""INT8 calibration feeds from a registered training dataset, for the TensorRT builder.

The runtime takes calibration data as an iterable of ``{input name: float32 tensor}``; this is
where a dataset's samples become those feeds, with the node's own pre-processing
(depth_nodes.core.preprocess), so the installed package never imports ``training``.
``python -m training.build_engine`` is depth_nodes.build_engine with these feeds behind
``--calibration-dataset``.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import image_to_tensor


def sample_to_feeds(sample: Mapping[str, Any], spec: ModelSpec) -> dict[str, np.ndarray]:
    """A training-dataset sample (training/datasets/base.py keys) -> the model's input feeds."""
    kind, names = spec.input_kind, spec.input_names
    if kind in ('rgb', 'gray') and len(names) == 1:
        return {names[0]: image_to_tensor(sample['rgb'], 'rgb8', spec)}
    if kind == 'nir' and len(names) == 1:
        return {names[0]: image_to_tensor(sample['nir'], 'mono8', spec)}
    if kind == 'stereo' and len(names) == 2:
        return {names[0]: image_to_tensor(sample['rgb'], 'rgb8', spec),
                names[1]: image_to_tensor(sample['right'], 'rgb8', spec)}
    raise ValueError(f"INT8 calibration of '{kind}' models with inputs {list(names)} is not "
                     'supported; build this model at fp16')


def dataset_calibration_feeds(name: str, spec: ModelSpec, split: str = 'train',
                              root: str | None = None, limit: int = 500
                              ) -> Iterator[dict[str, np.ndarray]]:
    """Feeds from the first ``limit`` samples of a registered dataset (training.datasets)."""
    from training.datasets import build_dataset
    dataset = build_dataset(name, split, root)
    count = min(len(dataset), limit)
    if count == 0:
        raise ValueError(f"dataset '{name}' ({split}) has no samples")
    return (sample_to_feeds(dataset[i], spec) for i in range(count))
