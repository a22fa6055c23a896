"""`python -m training.build_engine ...`: depth_nodes.build_engine with INT8 calibration on a
training dataset (``--calibration-dataset NAME``), from a source checkout.

The installed package never imports ``training``, so the dataset feeds are passed in from
here; every other argument and the exit status are depth_nodes.build_engine's.
"""
from __future__ import annotations

import sys

from depth_nodes import build_engine
from training.calibration_feeds import dataset_calibration_feeds


def main(argv=None) -> int:
    return build_engine.main(argv, dataset_feeds=dataset_calibration_feeds)


if __name__ == '__main__':
    sys.exit(main())
