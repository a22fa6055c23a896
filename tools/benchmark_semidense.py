#!/usr/bin/env python3
"""Inference time of the semi-dense interpolation network at a given size (ONNX Runtime, CPU).

    python tools/benchmark_semidense.py                       # 1000x1300, the paper's size
    python tools/benchmark_semidense.py --model models/semidense_synthetic.onnx  # as shipped
    python tools/benchmark_semidense.py --checkpoint runs/semidense_synthetic/checkpoints/last.pt \
        --height 500 --width 740 --onnx-out /tmp/semidense_500x740.onnx --runs 0

Makarov et al. report 300 ms for a 1000x1300 depth map on a 4-core i7 CPU. The network is
fully convolutional, so this exports it at the requested (even) size with training.export
(the weights of ``--checkpoint``, or fresh ones with ``--config``'s architecture: the time does
not depend on the values), then times

- ``engine``: ONNX Runtime's run() alone, ``--threads`` intra-op threads;
- ``estimator``: SemiDenseEstimator.estimate on a 10 % semi-dense map (nearest fill and
  distances, run, metres, keeping known depths): what the node spends per frame. The map is
  of the model's size, or ``--input-height`` x ``--input-width`` (e.g. a 1280x720 camera
  through the 640x480 model: by default the estimator runs the network over overlapping
  tiles at the camera's resolution; with ``--no-native-resolution`` it moves the samples
  onto the model's grid and resizes the dense result back).

- ``fills``: the input channels alone (core.semidense.semidense_fill_tensor), and
  ``fills_one_thread`` the same without computing the linear fill on a second thread (fill
  models).

- ``engine_cpu_provider`` (with ``--cpu-provider``, when the engine runs on the OpenVINO
  provider of ONNX Runtime's OpenVINO build): run() on ONNX Runtime's CPU provider instead.

Prints min / median / p90 in ms and writes them as JSON with ``--output``. ``--onnx-out``
keeps the exported model and its .pt2 (e.g. to evaluate a checkpoint at a camera's resolution).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))
from benchmark_dpn import time_calls  # noqa: E402

PAPER_MS = 300.0


def resized_method(height: int, width: int, checkpoint: str | None, config: str):
    """A SemiDenseMethod at height x width with a checkpoint's weights (or fresh ones)."""
    from training.models.semidense import SemiDenseMethod
    if checkpoint:
        from training.checkpoint import method_from_checkpoint
        trained, _ = method_from_checkpoint(Path(checkpoint), with_optimizers=False)
        if trained.name != 'semidense':
            raise ValueError(f"'{checkpoint}' is a {trained.name} checkpoint, not semidense")
        options, state = trained.config, trained.network.state_dict()
    else:
        from training.config import load_config
        options, state = load_config(config).method_config(), None
    method = SemiDenseMethod(dataclasses.replace(options, input_height=height,
                                                 input_width=width))
    if state is not None:
        method.network.load_state_dict(state)
    return method


def timings(function, runs: int, warmup: int) -> dict[str, float]:
    """min / median / p90 ms of ``runs`` calls after ``warmup`` (benchmark_dpn's timer)."""
    return {**time_calls(function, runs, warmup), 'runs': runs}


def semidense_input(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A plausible 10 % semi-dense map (a tilted plane with boxes, sampled on its edges) and
    its (H, W) uint8 intensity image."""
    from depth_nodes.core.semidense import semidense_mask_from_gradient
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 2.0 + 3.0 * v / height + u / width
    for _ in range(20):
        top, left = rng.integers(0, height - height // 8), rng.integers(0, width - width // 8)
        depth[top:top + height // 8, left:left + width // 8] *= rng.uniform(0.5, 0.9)
    texture = np.clip(40 * depth + rng.normal(0, 3, depth.shape), 0, 255).astype(np.uint8)
    mask = semidense_mask_from_gradient(texture, 0.1)
    return np.where(mask, depth, np.float32(np.nan)).astype(np.float32), texture


def fill_timings(estimator, depth: np.ndarray, intensity: np.ndarray | None, runs: int,
                 warmup: int) -> dict[str, dict[str, float]]:
    """The fill channels of a fill model's input where the estimator computes them (at the
    input's size when it runs in tiles, else on the model's grid), with and without the linear
    fill on a second thread; {} for other models."""
    from depth_nodes.core.semidense import FILL_NORMALIZATION, semidense_fill_tensor
    spec = estimator.spec
    if spec.extras.get('depth_normalization') != FILL_NORMALIZATION:
        return {}
    if estimator.native_resolution and all(
            size >= grid for size, grid in zip(depth.shape, spec.input_size)):
        spec = dataclasses.replace(spec, input_height=depth.shape[0],
                                   input_width=depth.shape[1])
    return {f'fills{suffix}': timings(
        lambda: semidense_fill_tensor(depth, spec, intensity, background=background),
        runs, warmup) for suffix, background in (('', True), ('_one_thread', False))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--height', type=int, default=1000)
    parser.add_argument('--width', type=int, default=1300)
    parser.add_argument('--input-height', type=int, help='semi-dense map height for the '
                        'estimator timing (default: --height)')
    parser.add_argument('--input-width', type=int, help='(default: --width)')
    parser.add_argument('--native-resolution', action=argparse.BooleanOptionalAction,
                        default=True, help='a larger estimator input runs at its own '
                        'resolution in tiles (the node\'s default); --no-native-resolution: '
                        'moved onto the model\'s grid and back')
    parser.add_argument('--checkpoint', help='semidense training checkpoint (.pt)')
    parser.add_argument('--config', default=str(REPO / 'training' / 'configs' /
                                                'semidense_synthetic.yaml'),
                        help='architecture without --checkpoint (default: the demo config)')
    parser.add_argument('--threads', type=int, default=2, help='ONNX Runtime intra-op threads')
    parser.add_argument('--runs', type=int, default=10, help='timed runs (0: export only)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--model', type=Path, help='time this exported model (.onnx) '
                        'instead of exporting one')
    parser.add_argument('--spin-wait', action='store_true',
                        help="ONNX Runtime's threads spin-wait after each run (its default; "
                             'semidense_depth_node turns it off)')
    parser.add_argument('--cpu-provider', action='store_true',
                        help="with ONNX Runtime's OpenVINO build: also time its CPU provider")
    parser.add_argument('--onnx-out', type=Path, help='keep the exported model here')
    parser.add_argument('--output', type=Path, help='write the timings as JSON here')
    args = parser.parse_args(argv)
    if args.height % 2 or args.width % 2:
        parser.error('height and width must be even (one 2x downsampling)')

    import logging

    import torch
    torch.set_num_threads(1)
    # The loss choice the method logs on construction does not matter for inference.
    logging.getLogger('training.models.semidense').setLevel(logging.ERROR)
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.model import open_model
    from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator
    from training.export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path = args.model
        else:
            method = resized_method(args.height, args.width, args.checkpoint, args.config)
            path = args.onnx_out or Path(tmp) / 'semidense.onnx'
            start = time.perf_counter()
            # A kept model gets its torch.export program (.pt2) beside it, as
            # training.export does.
            report = export_onnx(method, path, write_program=args.onnx_out is not None,
                                 tolerance=1e-3)
            print(f"exported {args.width}x{args.height} to {path} in "
                  f"{time.perf_counter() - start:.1f} s ({report['onnx_bytes'] / 1e6:.2f} MB, "
                  f"ONNX Runtime vs PyTorch {report['max_abs_error']:.2g})")
        if args.runs <= 0:
            return 0
        model = open_model(str(path), 'onnxruntime', EngineOptions(
            intra_op_threads=args.threads, spin_wait=args.spin_wait))
        args.height, args.width = model.spec.input_size
        estimator = SemiDenseEstimator(model, native_resolution=args.native_resolution)
        in_h, in_w = args.input_height or args.height, args.input_width or args.width
        depth, intensity = semidense_input(in_h, in_w)
        intensity = intensity if estimator.needs_intensity else None
        tensor = np.random.default_rng(0).random(
            (1, model.spec.input_channels, args.height, args.width), dtype=np.float32)
        name = model.spec.input_names[0]
        results = {
            'size': [args.height, args.width], 'input_size': [in_h, in_w],
            'native_resolution': args.native_resolution,
            'threads': args.threads, 'spin_wait': args.spin_wait,
            'engine': timings(lambda: model.engine.run({name: tensor}), args.runs, args.warmup),
            'estimator': timings(
                lambda: estimator.estimate(depth, intensity=intensity, keep_input_depth=True),
                args.runs, args.warmup),
            **fill_timings(estimator, depth, intensity, args.runs, args.warmup),
            'paper_ms': PAPER_MS, 'checkpoint': args.checkpoint,
            'model': str(args.model or ''),
            'onnxruntime': model.engine.describe()}
        on_openvino = 'OpenVINO' in model.engine.providers[0]
        model = estimator = None          # one ONNX Runtime thread pool at a time
        if args.cpu_provider and on_openvino:
            cpu = open_model(str(path), 'onnxruntime', EngineOptions(
                intra_op_threads=args.threads, openvino=False))
            results['engine_cpu_provider'] = timings(lambda: cpu.engine.run({name: tensor}),
                                                     args.runs, args.warmup)
            cpu = None
    print(f'model {args.width}x{args.height}, estimator input {in_w}x{in_h}, '
          f'{args.threads} ONNX Runtime thread(s)')
    print(f"engine: {results['onnxruntime']}")
    for key in ('engine', 'estimator', 'fills', 'fills_one_thread', 'engine_cpu_provider'):
        if key not in results:
            continue
        t = results[key]
        print(f"{key:>19}: min {t['min_ms']:7.1f} ms  median {t['median_ms']:7.1f} ms  "
              f"p90 {t['p90_ms']:7.1f} ms  ({t['runs']} runs; paper: {PAPER_MS:.0f} ms)")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
