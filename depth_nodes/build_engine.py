"""Build a TensorRT engine from an ONNX depth model, ahead of the node's first start.

    python -m depth_nodes.build_engine --onnx model.onnx [--precision fp32|fp16|int8]
        [--calibration-dir images/ | --calibration-dataset <name>] [--workspace-mb N]
        [--timing-cache file] --output model.engine

(also ``ros2 run depth_nodes build_engine ...``). The engine is written to ``--output`` and,
unless ``--no-engine-cache``, stored in the nodes' engine cache, so a node started with the
same model, precision and GPU loads it instead of building. INT8 calibrates on images run
through the node's own pre-processing and writes the calibration table to
``--calibration-cache`` (default: the engine cache, where nodes look for it).

``--check-only`` runs the static TensorRT-compatibility check of the ONNX file (operators,
static shapes, opset, no float64), which needs neither TensorRT nor a GPU.
Exit status: 0 done, 1 failed (message on stderr), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from depth_nodes.runtime.engine import PRECISIONS, ModelLoadError

DOCS = 'docs/tensorrt.md'


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {value}')
    return value


def make_parser() -> argparse.ArgumentParser:
    from depth_nodes.runtime.tensorrt_engine import (DEFAULT_CALIBRATION_SAMPLES,
                                                     DEFAULT_WORKSPACE_MB)
    parser = argparse.ArgumentParser(
        prog='python -m depth_nodes.build_engine',
        description='Build (and cache) a TensorRT engine from an ONNX depth model.',
        epilog=f'Needs TensorRT 10 and an NVIDIA GPU, except --check-only. See {DOCS}.')
    parser.add_argument('--onnx', required=True, type=Path, help='the ONNX model')
    parser.add_argument('--output', type=Path,
                        help='where to write the serialized engine (required unless '
                             '--check-only)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='engine precision (default fp32); int8 needs calibration data')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--calibration-dir', type=Path,
                        help='int8: a directory of representative images')
    source.add_argument('--calibration-dataset',
                        help='int8: a training dataset by name (training.datasets registry)')
    parser.add_argument('--calibration-split', default='train',
                        help='split of --calibration-dataset (default train)')
    parser.add_argument('--calibration-root', help='root directory of --calibration-dataset')
    parser.add_argument('--calibration-samples', type=_positive_int,
                        default=DEFAULT_CALIBRATION_SAMPLES,
                        help=f'at most this many calibration images '
                             f'(default {DEFAULT_CALIBRATION_SAMPLES})')
    parser.add_argument('--calibration-cache', type=Path,
                        help='int8 calibration table: read when it exists (no calibration '
                             'data needed), else written (default: in the engine cache)')
    parser.add_argument('--workspace-mb', type=_positive_int, default=DEFAULT_WORKSPACE_MB,
                        help=f'builder workspace limit in MiB (default {DEFAULT_WORKSPACE_MB})')
    parser.add_argument('--timing-cache', type=Path,
                        help='kernel timing cache file, reused and updated across builds')
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument('--engine-cache-dir', type=Path,
                       help="the nodes' engine cache (default: $ROS_HOME/depth_nodes/engines "
                            'or ~/.ros/depth_nodes/engines)')
    cache.add_argument('--no-engine-cache', action='store_true',
                       help='only write --output; do not store the engine in the cache')
    parser.add_argument('--device-id', type=int, default=0, help='CUDA device (default 0)')
    parser.add_argument('--check-only', action='store_true',
                        help='only check the ONNX file for TensorRT compatibility')
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and validate; usage errors exit with status 2 and say what is wrong."""
    from depth_nodes.runtime.engine_cache import default_cache_dir
    parser = make_parser()
    args = parser.parse_args(argv)
    if not args.onnx.is_file():
        parser.error(f"--onnx: '{args.onnx}' does not exist or is not a file")
    if args.check_only:
        return args
    if args.output is None:
        parser.error('--output is required (where to write the engine)')
    if args.output.is_dir():
        parser.error(f"--output: '{args.output}' is a directory; give the engine's file name")
    if not args.output.parent.is_dir():
        parser.error(f"--output: directory '{args.output.parent}' does not exist")
    calibration_given = args.calibration_dir or args.calibration_dataset or args.calibration_cache
    if args.precision != 'int8' and calibration_given:
        parser.error('--calibration-* options apply to --precision int8 only')
    if args.calibration_dir is not None and not args.calibration_dir.is_dir():
        parser.error(f"--calibration-dir: '{args.calibration_dir}' is not a directory")
    args.engine_cache_dir = args.engine_cache_dir or default_cache_dir()
    if args.precision == 'int8':
        if args.calibration_cache is None:
            from depth_nodes.runtime.tensorrt_engine import calibration_cache_candidates
            args.calibration_cache = calibration_cache_candidates(args.onnx,
                                                                  args.engine_cache_dir)[1]
        if not (args.calibration_dir or args.calibration_dataset
                or args.calibration_cache.is_file()):
            parser.error('--precision int8 needs calibration data: --calibration-dir or '
                         f'--calibration-dataset (no calibration table at '
                         f"'{args.calibration_cache}')")
    return args


def check_model(onnx_path: Path) -> list:
    """TensorRT-compatibility problems of the ONNX file ([] when onnx is not installed)."""
    try:
        from depth_nodes.runtime.onnx_compat import check_tensorrt_compatibility
    except ImportError:
        return []
    return check_tensorrt_compatibility(onnx_path)


def build(args: argparse.Namespace) -> Path:
    """Build the engine described by ``args``; returns the engine path written."""
    from depth_nodes.core.model_spec import spec_from_metadata
    from depth_nodes.runtime import tensorrt_engine as trt_engine
    from depth_nodes.runtime.engine_cache import EngineCache, atomic_write_bytes, make_engine_key

    interface = trt_engine.read_onnx_interface(args.onnx)
    calibrator = None
    if args.precision == 'int8':
        spec, _ = spec_from_metadata(interface.metadata, interface.input_shapes,
                                     list(interface.output_names))
        batches = ()
        if not args.calibration_cache.is_file():
            if args.calibration_dir is not None:
                batches = trt_engine.calibration_batches_from_directory(
                    args.calibration_dir, spec, args.calibration_samples)
            else:
                batches = trt_engine.calibration_batches_from_dataset(
                    args.calibration_dataset, spec, args.calibration_split,
                    args.calibration_root, args.calibration_samples)
        calibrator = trt_engine.make_entropy_calibrator(
            batches, interface.input_shapes, args.calibration_cache, args.device_id)
    import torch
    with torch.cuda.device(args.device_id):
        start = time.perf_counter()
        engine = trt_engine.build_serialized_engine(args.onnx, args.precision, args.workspace_mb,
                                                    args.timing_cache, calibrator)
        build_s = time.perf_counter() - start
    atomic_write_bytes(args.output, engine)
    print(f'built {args.precision} engine for {args.onnx} in {build_s:.1f} s: {args.output} '
          f'({len(engine) / 1e6:.1f} MB)')
    if calibrator is not None:
        print(f'INT8 calibration table: {args.calibration_cache} '
              f'({calibrator.batches_used} images used)')
    if not args.no_engine_cache:
        name, capability = trt_engine.gpu_identity(args.device_id)
        key = make_engine_key(args.onnx, tensorrt_version=trt_engine.tensorrt_version(),
                              gpu_name=name, compute_capability=capability,
                              precision=args.precision,
                              calibration_cache=args.calibration_cache
                              if args.precision == 'int8' else None)
        cached = EngineCache(args.engine_cache_dir).store(
            args.onnx, key, engine, {'build_seconds': round(build_s, 3),
                                     'workspace_mb': args.workspace_mb})
        print(f'stored in the engine cache: {cached}')
    return args.output


def main(argv=None) -> int:
    args = parse_args(argv)
    problems = check_model(args.onnx)
    if problems:
        from depth_nodes.runtime.onnx_compat import format_problems
        print(f'{args.onnx}: {len(problems)} TensorRT compatibility problem(s):\n'
              + format_problems(problems), file=sys.stderr)
    if args.check_only:
        if not problems:
            print(f'{args.onnx}: no TensorRT 10 compatibility problems found')
        return 1 if problems else 0
    from depth_nodes.runtime.engine_cache import EngineCacheError
    from depth_nodes.runtime.tensorrt_engine import TensorRTBuildError, availability
    available, reason = availability()
    if not available:
        print(f'error: cannot build a TensorRT engine here: {reason}. This command needs '
              f'TensorRT 10 (Python bindings) and an NVIDIA GPU with CUDA; see {DOCS}. '
              'Without them the nodes run the ONNX model with ONNX Runtime '
              '(backend:=onnxruntime).', file=sys.stderr)
        return 1
    try:
        build(args)
    except (TensorRTBuildError, EngineCacheError, ModelLoadError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
