#!/usr/bin/env python3
"""Metric depth with scale_from on the real Middlebury motorcycle pair, beside median scaling.

    source tools/env.sh && python tools/evaluate_scale_from.py
    python tools/evaluate_scale_from.py --model eigen_synthetic pix2pix_synthetic --density 0.1

Per model, one row each, Abs Rel and delta<1.25 against the ground truth (disparity -> depth
with the pair's calibration, training/datasets/middlebury.py):
- 'scale_from': what mono_depth_node publishes with scale_from:=semidense (its frame path,
  MonoDepthFramePath, run on the left image and a semidense/depth image holding the ground
  truth at ``--density`` of the pixels picked as LSD-SLAM picks them: high-gradient pixels,
  depth_nodes.core.semidense.semidense_mask_from_gradient, the training mask). Unscaled:
  compared as published, in metres.
- 'median-scaled': the model's depth multiplied by median(truth) / median(prediction), the
  protocol of training.evaluate (scale from the ground truth itself, not available on a robot).
- 'model scale': the model's own metres, as published without scale_from.
Baselines: the constant depth median(truth) (the median-scaled constant), and the constant
median of the sparse points (what the sparse depth gives without a model).
The goal of issue 21: 'scale_from' Abs Rel within 10 % of 'median-scaled'.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # training/ from the checkout

from depth_nodes import ros_io  # noqa: E402
from depth_nodes.core.semidense import (intensity_from_image,  # noqa: E402
                                        random_sample_mask, semidense_mask_from_gradient)
from depth_nodes.frames import MonoDepthFramePath, parameter_defaults  # noqa: E402
from depth_nodes.runtime.estimator import POST_PROCESSES, MonoDepthEstimator  # noqa: E402
from depth_nodes.runtime.model import open_model  # noqa: E402
from training.datasets.middlebury import MiddleburyMotorcycle  # noqa: E402
from training.metrics import DepthEvalProtocol, depth_metrics  # noqa: E402

EVALUATION_RANGE = (1e-6, 1e6)     # as training.evaluate: the protocol decides what counts


def sparse_truth(sample, density: float, mask_kind: str, seed: int) -> np.ndarray:
    """The ground truth at the pixels a semi-dense SLAM (or a uniform sampler) would give,
    NaN elsewhere (and where the truth is unknown)."""
    depth = sample['depth']
    if mask_kind == 'gradient':
        mask = semidense_mask_from_gradient(intensity_from_image(sample['rgb'], 'rgb8'),
                                            density)
    else:
        mask = random_sample_mask(depth.shape, density, np.random.default_rng(seed))
    return np.where(mask & np.isfinite(depth), depth, np.nan).astype(np.float32)


def scale_from_depth(model: str, sample, sparse: np.ndarray, options: dict):
    """What mono_depth_node publishes with scale_from:=semidense, and the fit."""
    values = {**parameter_defaults(MonoDepthFramePath), 'model': model,
              'backend': 'onnxruntime', 'scale_from': 'semidense', **options}
    loaded = open_model(model, 'onnxruntime')
    path = MonoDepthFramePath(MonoDepthFramePath.build_estimator(loaded, values), values)
    camera = sample['camera']
    path.accept('camera_info', ros_io.intrinsics_to_camera_info(camera, ros_io.Header()))
    path.accept('semidense/depth', ros_io.array_to_image(sparse, '32FC1', ros_io.Header()))
    job = path.accept('image', ros_io.image_to_cdr(sample['rgb'], 'rgb8', ros_io.Header()))
    result = path.estimate(job).result
    return result.depth, result.extras['scale_fit'], loaded


def evaluate(models, density, mask_kind, seed, options) -> list[tuple[str, dict]]:
    sample = MiddleburyMotorcycle('test')[0]
    truth = sample['depth']
    sparse = sparse_truth(sample, density, mask_kind, seed)
    plain, median = DepthEvalProtocol(), DepthEvalProtocol(median_scaling=True)
    known = np.isfinite(sparse)
    rows = [(f'sparse depth: {known.sum()} points ({known.mean():.1%} of the pixels, '
             f'{mask_kind})', None)]
    rows.append(('constant median(truth)  [median-scaled]',
                 depth_metrics(np.full_like(truth, np.nanmedian(truth)), truth, plain)))
    rows.append(('constant median(sparse) [unscaled]',
                 depth_metrics(np.full_like(truth, np.nanmedian(sparse)), truth, plain)))
    for model in models:
        depth, fit, loaded = scale_from_depth(model, sample, sparse, options)
        own_estimator = MonoDepthEstimator(loaded,
                                           post_process=options.get('post_process', 'none'))
        own = own_estimator.estimate(sample['rgb'], 'rgb8', sample['camera'],
                                     depth_range=EVALUATION_RANGE).depth
        name = Path(model).stem
        rows.append((f'{name} model scale        [unscaled]', depth_metrics(own, truth, plain)))
        rows.append((f'{name} median-scaled      [truth median]',
                     depth_metrics(own, truth, median)))
        note = (f'{fit.kind} s={fit.scale:.4g} inliers {fit.inliers}/{fit.points} '
                f'residual {fit.residual:.3f}')
        rows.append((f'{name} scale_from         [unscaled]',
                     depth_metrics(depth, truth, plain) | {'fit': note}))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', nargs='+', default=['eigen_synthetic'],
                        help='model paths or names under models/')
    parser.add_argument('--density', type=float, default=0.10,
                        help='fraction of pixels with sparse depth')
    parser.add_argument('--mask', default='gradient', choices=('gradient', 'random'),
                        help='gradient: LSD-SLAM-like; random: uniform (LiDAR-like)')
    parser.add_argument('--seed', type=int, default=0, help='random mask seed')
    parser.add_argument('--scale-inlier-error', type=float,
                        default=parameter_defaults(MonoDepthFramePath)['scale_inlier_error'])
    parser.add_argument('--post-process', default='none', choices=POST_PROCESSES,
                        help="the node's post_process parameter")
    args = parser.parse_args(argv)
    rows = evaluate(args.model, args.density, args.mask, args.seed,
                    {'scale_inlier_error': args.scale_inlier_error,
                     'post_process': args.post_process})
    print(f"{'Middlebury motorcycle (741x500)':50s} {'Abs Rel':>8s} {'d<1.25':>7s} "
          f"{'coverage':>8s}")
    for name, m in rows:
        if m is None:
            print(name)
            continue
        print(f"{name:50s} {m['abs_rel']:8.3f} {m['delta1']:7.3f} {m['coverage']:8.3f}"
              + (f"   {m['fit']}" if 'fit' in m else ''))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
