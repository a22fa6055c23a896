"""Datasets: the synthetic scene generator and loaders for the papers' real datasets.

Importing this package registers every dataset in training.datasets.base.DATASETS.
"""
from training.datasets.base import DATASETS, Sample, build_dataset, register_dataset  # noqa: F401
# Each module registers its datasets on import.
from training.datasets import (cityscapes, diml, kitti, middlebury, nyu_v2,  # noqa: F401,E402
                               pitts_rgbnir, rosbag, scenenet, synthetic,
                               synthetic_layers)
