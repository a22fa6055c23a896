#!/usr/bin/env python3
"""Depth order and median-scaled error of the monocular models on the real Middlebury
motorcycle pair, beside the two baselines a user has without a model (issue 21's goal table).

    source tools/env.sh && python tools/evaluate_mono_real.py
    python tools/evaluate_mono_real.py --model runs/eigen_world/model.onnx eigen_synthetic
    python tools/evaluate_mono_real.py --model eigen_synthetic --spec resize_mode=letterbox
    python tools/evaluate_mono_real.py --mirror     # the mirrored pair
    python tools/evaluate_mono_real.py --post-process flip   # as post_process:=flip

Ground truth: scikit-image's Middlebury 2014 Motorcycle (741x500), disparity -> metres with
the pair's calibration (training/datasets/middlebury.py). Evaluation only: no model of this
project is trained on it. Each model runs through the node's runtime (MonoDepthEstimator,
ONNX Runtime, depth resized to the image). Columns, over the pixels with ground truth:
- Abs Rel and delta<1.25 after per-image median scaling (prediction * median(gt) /
  median(prediction)), training.metrics.depth_metrics;
- Spearman: rank correlation of predicted and true depth (scale-free: the depth order).
- rho(bright=near): rank correlation of the predicted depth with the "brighter is nearer"
  map (depth = 256 - BT.601 luma). Near 1 means the model mostly turned brightness into
  depth, the shortcut issue 21 warns cyclegan about; the same column for the ground truth
  ('bright = near' row, Spearman) says how much brightness really tells depth in this scene.
Baselines: 'constant' = median(gt) everywhere (Abs Rel and delta<1.25 only: a constant has
no order); 'row index' = "lower in the image is nearer", depth = H - row, i.e.
decreasing downwards (Spearman only: its values are not depths); 'bright = near' = the
luma map above (Spearman only).
Goal (issue 21): each model beats 'constant' in Abs Rel and delta<1.25, Spearman >= 0.6.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # training/ from the checkout

from depth_nodes.runtime.estimator import POST_PROCESSES, MonoDepthEstimator  # noqa: E402
from depth_nodes.runtime.model import open_model  # noqa: E402
from training.datasets.augment import horizontal_flip  # noqa: E402
from training.datasets.middlebury import MiddleburyMotorcycle  # noqa: E402
from training.metrics import DepthEvalProtocol, depth_metrics  # noqa: E402

MODELS = ('eigen_synthetic', 'pix2pix_synthetic', 'cyclegan_synthetic', 'dpn_synthetic')
EVALUATION_RANGE = (1e-6, 1e6)     # as training.evaluate: the protocol decides what counts


def depth_order(pred: np.ndarray, gt: np.ndarray) -> float:
    """Spearman rank correlation over pixels with finite ground truth and prediction."""
    valid = np.isfinite(gt) & np.isfinite(pred) & (gt > 0)
    return float(spearmanr(pred[valid], gt[valid]).statistic)


def row_index_depth(shape: tuple[int, int]) -> np.ndarray:
    """'Lower in the image is nearer': depth decreasing with the row (top row farthest)."""
    rows = np.arange(shape[0], dtype=np.float64)
    return np.repeat((shape[0] - rows)[:, None], shape[1], axis=1)


def bright_is_near_depth(rgb: np.ndarray) -> np.ndarray:
    """'Brighter is nearer': 256 - BT.601 luma of an RGB image, a positive depth-like map."""
    return 256.0 - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)


def goal_rows(models, sample, spec_overrides=None, post_process: str = 'none'
              ) -> list[tuple[str, float, float, float, float]]:
    """(name, Abs Rel, delta<1.25, Spearman, rho(bright=near)) per baseline and model; NaN
    where undefined. ``spec_overrides``: spec fields changed for every model (the node's
    spec.<field> parameters); ``post_process``: the node's parameter, for every model."""
    truth = sample['depth']
    # Over the pixels with ground truth, as every other column.
    bright = np.where(np.isfinite(truth), bright_is_near_depth(sample['rgb']), np.nan)
    median = DepthEvalProtocol(median_scaling=True)
    constant = depth_metrics(np.full_like(truth, np.nanmedian(truth)), truth, median)
    rows = [('constant median(gt)', constant['abs_rel'], constant['delta1'], np.nan, np.nan),
            ('row index (lower = nearer)', np.nan, np.nan,
             depth_order(row_index_depth(truth.shape), truth), np.nan),
            ('bright = near (256 - luma)', np.nan, np.nan, depth_order(bright, truth), np.nan)]
    for model in models:
        estimator = MonoDepthEstimator(open_model(model, 'onnxruntime',
                                                  spec_overrides=spec_overrides),
                                       post_process=post_process)
        depth = estimator.estimate(sample['rgb'], 'rgb8', sample['camera'],
                                   depth_range=EVALUATION_RANGE).depth
        m = depth_metrics(depth, truth, median)
        rows.append((Path(model).stem if model.endswith('.onnx') else model, m['abs_rel'],
                     m['delta1'], depth_order(depth, truth), depth_order(depth, bright)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', nargs='+', default=list(MODELS),
                        help='ONNX paths or names under models/')
    parser.add_argument('--mirror', action='store_true',
                        help='evaluate on the left-right mirrored pair: the same pixels with the '
                             "layout mirrored, a second view a model's score should not "
                             'depend on')
    parser.add_argument('--spec', action='append', default=[], metavar='FIELD=VALUE',
                        help="override a field of every model's spec, as the node's "
                             'spec.<field> parameters do (e.g. resize_mode=letterbox)')
    parser.add_argument('--post-process', default='none', choices=POST_PROCESSES,
                        help="the node's post_process parameter for every model: 'flip' also "
                             'runs the mirrored image and averages the two')
    args = parser.parse_args(argv)
    if any('=' not in item for item in args.spec):
        parser.error('--spec takes FIELD=VALUE')
    overrides = dict(item.split('=', 1) for item in args.spec)
    sample = MiddleburyMotorcycle('test')[0]
    title = 'Middlebury motorcycle 741x500, median-scaled'
    if args.mirror:
        # The left view alone (a stereo sample would swap views when flipped).
        left = {key: sample[key] for key in ('rgb', 'depth', 'camera')}
        sample, title = horizontal_flip(left), 'Middlebury motorcycle, mirrored'
    print(f"{title:46s} {'Abs Rel':>8s} "
          f"{'d<1.25':>7s} {'Spearman':>8s} {'rho(bright=near)':>16s}")
    for name, abs_rel, delta1, rho, rho_bright in goal_rows(args.model, sample, overrides,
                                                            args.post_process):
        print(f'{name:46s} {abs_rel:8.3f} {delta1:7.3f} {rho:8.3f} {rho_bright:16.3f}'
              .replace('nan', '  -'))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
