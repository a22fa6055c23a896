#!/usr/bin/env python3
"""The DPN's evidence: inference speed on this CPU, and SGBM vs DPN on Middlebury.

  python tools/benchmark_dpn.py speed [--model M.onnx] [--threads 1 2] [--runs 30]
  python tools/benchmark_dpn.py middlebury --model models/dpn_synthetic.onnx [--output m.json]

speed: ONNX Runtime (CPU) time of one inference, median and 90th percentile over --runs after
warm-up, per thread count. Without --model, a freshly initialised paper-size DPN (512x256,
full width) is exported to a temporary file: weights do not
change the time. Also times the whole estimator (pre-processing, inference, resize, metres)
on a 1242x375 KITTI-size image, with and without "pp" (two inferences). The machine's load
average is printed: on a shared CPU the numbers are upper bounds.

middlebury: scikit-image's Middlebury 2014 Motorcycle (741x500, real), the left view's
disparity from OpenCV StereoSGBM and from the DPN (left image only; its width fraction x 741),
against the ground truth: EPE and bad-1/2/3 (% of pixels off by more than N px; a pixel without
an estimate counts as bad and lowers coverage), and depth metrics (Z = f B / (d + doffs)) as
predicted and after per-image median scaling (the DPN was trained on another rig).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

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


def middlebury(model: str, num_disparities: int, block_size: int) -> dict:
    from depth_nodes.core.camera import CameraIntrinsics
    from depth_nodes.core.stereo import SgbmParameters
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.model import open_model
    from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator, SgbmStereoEstimator
    from training.datasets import build_dataset
    from training.metrics import DepthEvalProtocol, depth_metrics, disparity_metrics

    sample = build_dataset('middlebury_motorcycle', 'test')[0]
    left, right, gt = sample['rgb'], sample['right'], sample['disparity']
    camera, doffs, baseline = sample['camera'], sample['disparity_offset'], sample['baseline']
    # The right camera of the Middlebury rig: principal point doffs to the right, Tx = -f B.
    right_camera = CameraIntrinsics(camera.width, camera.height, camera.fx, camera.fy,
                                    camera.cx + doffs, camera.cy, tx=-camera.fx * baseline)
    loaded = open_model(model, 'onnxruntime', EngineOptions(intra_op_threads=1))
    estimators = {
        f'sgbm (num_disparities {num_disparities}, block {block_size})': SgbmStereoEstimator(
            SgbmParameters(num_disparities=num_disparities, block_size=block_size), 0.01, 1e3),
        'dpn': LearnedStereoEstimator(loaded),
        'dpn + pp': LearnedStereoEstimator(loaded, post_process='pp'),
    }
    results = {'model': model, 'sample': sample['name'], 'size': f'{camera.width}x'
               f'{camera.height}', 'ground_truth_pixels': int(np.isfinite(gt).sum()),
               'methods': {}}
    for name, estimator in estimators.items():
        start = time.perf_counter()
        result = estimator.estimate(left, 'rgb8', right, 'rgb8', camera, right_camera,
                                    depth_range=(1e-3, 1e3))
        seconds = time.perf_counter() - start
        # The estimators publish d + doffs (Z = f B / d); the ground truth is d.
        disparity = result.disparity - np.float32(doffs)
        entry = {'seconds': seconds, 'disparity': disparity_metrics(disparity, gt, (1, 2, 3))}
        for label, scaling in (('depth', False), ('depth_median_scaled', True)):
            entry[label] = depth_metrics(result.depth, sample['depth'],
                                         DepthEvalProtocol(median_scaling=scaling))
        results['methods'][name] = entry
    return results


def print_table(results: dict) -> None:
    if 'methods' in results:
        print(f"{results['sample']} ({results['size']}), model {results['model']}")
        header = ('method', 'EPE px', 'bad-1 %', 'bad-2 %', 'bad-3 %', 'cover', 'AbsRel',
                  'AbsRel med', 'd1 med', 's')
        print(' | '.join(header))
        for name, m in results['methods'].items():
            d, z, zm = m['disparity'], m['depth'], m['depth_median_scaled']
            print(' | '.join([name, f"{d['epe']:.2f}", f"{d['bad_1']:.1f}", f"{d['bad_2']:.1f}",
                              f"{d['bad_3']:.1f}", f"{d['coverage']:.3f}",
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
    m = sub.add_parser('middlebury', help='SGBM vs DPN on the scikit-image Motorcycle pair')
    m.add_argument('--model', default='dpn_synthetic', help='DPN model (path or name)')
    m.add_argument('--num-disparities', type=int, default=64)
    m.add_argument('--block-size', type=int, default=5)
    for p in (s, m):
        p.add_argument('--output', type=Path, help='write the results as JSON')
    args = parser.parse_args(argv)
    if args.command == 'speed':
        results = speed(args.model, args.threads, args.runs)
    else:
        results = middlebury(args.model, args.num_disparities, args.block_size)
    print_table(results)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
        print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
