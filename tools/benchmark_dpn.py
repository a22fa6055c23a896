#!/usr/bin/env python3
"""The DPN's evidence: inference speed on this CPU, and SGBM vs DPN on Middlebury.

  python tools/benchmark_dpn.py speed [--model M.onnx] [--threads 1 2] [--runs 30]
  python tools/benchmark_dpn.py stereo --model models/dpn_synthetic.onnx [--output m.json]
  python tools/benchmark_dpn.py stereo --dataset synthetic --dataset-option scene=outdoor \
      --dataset-option height=128 --dataset-option width=256 --limit 100

speed: ONNX Runtime (CPU) time of one inference, median and 90th percentile over --runs after
warm-up, per thread count. Without --model, a freshly initialised paper-size DPN (512x256,
full width) is exported to a temporary file: weights do not
change the time. Also times the whole estimator (pre-processing, inference, resize, metres)
on a 1242x375 KITTI-size image, with and without "pp" (two inferences). The machine's load
average is printed: on a shared CPU the numbers are upper bounds.

stereo: on scikit-image's Middlebury 2014 Motorcycle (741x500, real; the default) or the
test split of another stereo dataset, the left view's disparity from OpenCV StereoSGBM and
from the DPN (left image only; its width fraction x the width), with and without pp, against
the ground truth: EPE and bad-1/2/3 (% of pixels off by more than N px; a pixel without an
estimate counts as bad and lowers coverage), the same on the pixels where the first SGBM row
answers (SGBM's own EPE covers only those), "sgbm + row fill" (the first SGBM row's holes
filled along each row by the farther of the nearest valid disparities: dense, as the DPN),
and depth metrics (Z = f B / (d + doffs); 80 m
cap) as predicted and after per-image median scaling (the DPN may come from another rig).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {'median_ms': float(np.median(ms)), 'p90_ms': float(np.percentile(ms, 90)),
            'min_ms': float(ms.min()), 'fps_median': float(1e3 / np.median(ms))}


def time_calls(call, runs: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return _percentiles(seconds)


def speed(model: str | None, threads: list[int], runs: int) -> dict:
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.estimator import MonoDepthEstimator
    from depth_nodes.runtime.model import open_model
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            from training.export import export_onnx
            from training.models.monodepth import MonodepthConfig, MonodepthMethod
            model = str(Path(tmp) / 'dpn_paper_size.onnx')
            paper = MonodepthConfig(input_height=256, input_width=512, width_scale=1.0)
            export_onnx(MonodepthMethod(paper), model, write_program=False)
        report = {'model': model, 'load_average': os.getloadavg(), 'cpus': os.cpu_count(),
                  'runs': runs, 'threads': {}}
        image = np.random.default_rng(0).integers(0, 256, (375, 1242, 3), dtype=np.uint8)
        for n in threads:
            loaded = open_model(model, 'onnxruntime', EngineOptions(intra_op_threads=n))
            spec = loaded.spec
            name = spec.input_names[0]
            tensor = np.random.default_rng(1).standard_normal(
                (1, spec.input_channels, spec.input_height, spec.input_width)).astype(np.float32)
            plain = MonoDepthEstimator(loaded)
            pp = MonoDepthEstimator(loaded, post_process='pp')
            report['input'] = f'{spec.input_width}x{spec.input_height}'
            report['engine'] = loaded.engine.describe()
            report['threads'][n] = {
                'inference': time_calls(lambda: loaded.engine.run({name: tensor}), runs),
                'estimator_1242x375': time_calls(lambda: plain.estimate(image, 'rgb8'), runs),
                'estimator_1242x375_pp': time_calls(lambda: pp.estimate(image, 'rgb8'), runs),
            }
    return report


def fill_rows(disparity: np.ndarray) -> np.ndarray:
    """SGBM's holes filled as a user needing dense depth would: each invalid pixel takes the
    smaller (farther) of the nearest valid disparities left and right of it in its row, the
    usual fill of occlusions, which are background; a row without any keeps its holes."""
    valid = np.isfinite(disparity)
    columns = np.arange(disparity.shape[1])
    rows = np.arange(disparity.shape[0])[:, None]
    sides = []
    for index in (np.maximum.accumulate(np.where(valid, columns, -1), axis=1),
                  np.minimum.accumulate(np.where(valid, columns, disparity.shape[1])[:, ::-1],
                                        axis=1)[:, ::-1]):
        inside = (index >= 0) & (index < disparity.shape[1])
        sides.append(np.where(inside, disparity[rows, np.clip(index, 0, columns[-1])], np.nan))
    return np.where(valid, disparity, np.fmin(*sides)).astype(np.float32)


class FilledSgbm:
    """An SGBM estimator whose holes are filled (fill_rows), depth Z = f B / d."""

    def __init__(self, sgbm):
        self.sgbm = sgbm

    def estimate(self, left, left_encoding, right, right_encoding, camera, right_camera,
                 depth_range):
        result = self.sgbm.estimate(left, left_encoding, right, right_encoding, camera,
                                    right_camera, depth_range=depth_range)
        disparity = fill_rows(result.disparity)
        depth = -right_camera.tx / np.where(disparity > 0, disparity, np.nan)
        return SimpleNamespace(disparity=disparity, depth=depth.astype(np.float32))


def stereo_comparison(model: str, dataset: str, options: dict, limit: int,
                      num_disparities: list[int], block_size: int,
                      min_depth: float = 1e-3) -> dict:
    """SGBM (one row per search range; 0: automatic from ``min_depth`` and the rig), the DPN
    and the DPN with pp on the stereo samples of ``dataset`` (per-image metrics averaged over
    the first ``limit`` samples; 0 = all)."""
    from depth_nodes.core.camera import CameraIntrinsics
    from depth_nodes.core.stereo import SgbmParameters
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.model import open_model
    from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator, SgbmStereoEstimator
    from training.datasets import build_dataset
    from training.metrics import (DepthEvalProtocol, MetricAverager, depth_metrics,
                                  disparity_metrics)

    samples = build_dataset(dataset, 'test', **options)
    count = len(samples) if limit <= 0 else min(limit, len(samples))
    loaded = open_model(model, 'onnxruntime', EngineOptions(intra_op_threads=1))
    estimators = {
        f'sgbm (num_disparities {n or "auto"}, block {block_size})': SgbmStereoEstimator(
            SgbmParameters(num_disparities=n, block_size=block_size), min_depth, 1e3)
        for n in num_disparities}
    first_sgbm = next(iter(estimators.values()))
    estimators.update({
        'sgbm + row fill': FilledSgbm(first_sgbm),
        'dpn': LearnedStereoEstimator(loaded),
        'dpn + pp': LearnedStereoEstimator(loaded, post_process='pp'),
    })
    sums = {name: {'disparity': MetricAverager(), 'disparity_on_sgbm_pixels': MetricAverager(),
                   'depth': MetricAverager(), 'depth_median_scaled': MetricAverager(),
                   'seconds': 0.0}
            for name in estimators}
    for index in range(count):
        sample = samples[index]
        camera, baseline = sample['camera'], sample['baseline']
        doffs = sample.get('disparity_offset', 0.0)
        # The right camera of the rig: principal point doffs to the right, Tx = -f B.
        right_camera = CameraIntrinsics(camera.width, camera.height, camera.fx, camera.fy,
                                        camera.cx + doffs, camera.cy, tx=-camera.fx * baseline)
        sgbm_pixels = None     # where the first SGBM row answers: every method's EPE there too
        for name, estimator in estimators.items():
            start = time.perf_counter()
            result = estimator.estimate(sample['rgb'], 'rgb8', sample['right'], 'rgb8',
                                        camera, right_camera,
                                        depth_range=(min_depth, 1e3))
            sums[name]['seconds'] += time.perf_counter() - start
            # The estimators publish d + doffs (Z = f B / d); the ground truth is d.
            disparity = result.disparity - np.float32(doffs)
            sums[name]['disparity'].add(disparity_metrics(disparity, sample['disparity'],
                                                          (1, 2, 3)))
            if sgbm_pixels is None:
                sgbm_pixels = np.isfinite(disparity)
            sums[name]['disparity_on_sgbm_pixels'].add(disparity_metrics(
                disparity, np.where(sgbm_pixels, sample['disparity'], np.nan), (1, 2, 3)))
            for label, scaling in (('depth', False), ('depth_median_scaled', True)):
                protocol = DepthEvalProtocol(max_depth=80.0, median_scaling=scaling)
                sums[name][label].add(depth_metrics(result.depth, sample['depth'], protocol))
    first = samples[0]
    return {'model': model, 'dataset': dataset, 'options': options, 'images': count,
            'size': f"{first['rgb'].shape[1]}x{first['rgb'].shape[0]}",
            'methods': {name: {'seconds': m['seconds'] / count,
                               **{k: v.means() for k, v in m.items() if k != 'seconds'}}
                        for name, m in sums.items()}}


def print_table(results: dict) -> None:
    if 'methods' in results:
        print(f"{results['dataset']} {results['options']}: {results['images']} image(s) of "
              f"{results['size']}, model {results['model']}")
        header = ('method', 'EPE px', 'bad-1 %', 'bad-2 %', 'bad-3 %', 'cover',
                  'EPE / bad-2 % on SGBM px', 'AbsRel', 'AbsRel med', 'd1 med', 's')
        print(' | '.join(header))
        for name, m in results['methods'].items():
            d, z, zm = m['disparity'], m['depth'], m['depth_median_scaled']
            on = m['disparity_on_sgbm_pixels']
            print(' | '.join([name, f"{d['epe']:.2f}", f"{d['bad_1']:.1f}", f"{d['bad_2']:.1f}",
                              f"{d['bad_3']:.1f}", f"{d['coverage']:.3f}",
                              f"{on['epe']:.2f} / {on['bad_2']:.1f}",
                              f"{z['abs_rel']:.3f}", f"{zm['abs_rel']:.3f}",
                              f"{zm['delta1']:.3f}", f"{m['seconds']:.2f}"]))
        return
    print(f"{results['model']} input {results['input']} on {results['engine']}; "
          f"{results['cpus']} CPUs, load average {results['load_average'][0]:.1f}")
    for n, timings in results['threads'].items():
        for what, t in timings.items():
            print(f'  {n} thread(s) {what:>24}: median {t["median_ms"]:7.1f} ms '
                  f'(p90 {t["p90_ms"]:.1f}, min {t["min_ms"]:.1f}) = {t["fps_median"]:.1f} FPS')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    s = sub.add_parser('speed', help='inference time with ONNX Runtime on this CPU')
    s.add_argument('--model', help='ONNX model (default: an untrained paper-size DPN)')
    s.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    s.add_argument('--runs', type=int, default=30)
    m = sub.add_parser('stereo', help='SGBM vs DPN on a stereo dataset (default: Middlebury '
                                      'Motorcycle of scikit-image)')
    m.add_argument('--model', default='dpn_synthetic', help='DPN model (path or name)')
    m.add_argument('--dataset', default='middlebury_motorcycle')
    m.add_argument('--dataset-option', action='append', default=[], metavar='KEY=VALUE',
                   help='dataset keyword argument (YAML value), e.g. scene=outdoor')
    m.add_argument('--limit', type=int, default=0, help='the first N test samples (0: all)')
    m.add_argument('--num-disparities', type=int, nargs='+', default=[0],
                   help='SGBM search range(s), one row each; 0: from --min-depth and the rig')
    m.add_argument('--min-depth', type=float, default=1e-3,
                   help='m: nearer depth is masked; sets the automatic SGBM range')
    m.add_argument('--block-size', type=int, default=5)
    for p in (s, m):
        p.add_argument('--output', type=Path, help='write the results as JSON')
    args = parser.parse_args(argv)
    if args.command == 'speed':
        results = speed(args.model, args.threads, args.runs)
    else:
        import yaml
        options = {k: yaml.safe_load(v) for k, _, v in
                   (item.partition('=') for item in args.dataset_option)}
        results = stereo_comparison(args.model, args.dataset, options, args.limit,
                                    args.num_disparities, args.block_size, args.min_depth)
    print_table(results)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
        print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
