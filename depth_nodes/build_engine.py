"""Build a TensorRT engine from an ONNX depth model, ahead of the node's first start.

    python -m depth_nodes.build_engine --onnx model.onnx [--precision fp32|fp16|int8]
        [--calibration-dir images/ | --calibration-dataset <name>] [--workspace-mb N]
        [--timing-cache file] --output model.engine

(also ``ros2 run depth_nodes build_engine ...``). The engine is written to ``--output`` and,
unless ``--no-engine-cache``, stored in the nodes' engine cache, so a node started with the
same model, precision, GPU and builder settings loads it instead of building.

INT8 calibration tables, one rule for the CLI and the nodes: they are looked for in the
engine cache, then beside the model (tensorrt_engine.calibration_cache_candidates).
Calibration data (``--calibration-dir`` images through the node's own pre-processing, or
``--calibration-dataset`` via ``python -m training.build_engine``) always calibrates anew and
its table replaces the one in the engine cache (with a warning when one exists); without
calibration data the table found is reused. A table is written only after a complete
calibration and a successful build, atomically.

``--check-only`` runs the static TensorRT-compatibility check of the ONNX file (operators,
static shapes, opset, no float64), which needs the ``onnx`` package but neither TensorRT nor
a GPU; without ``onnx`` it says it cannot check and exits 1.
Exit status: 0 done, 1 failed or could not check (message on stderr), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from typing import Callable

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
    from depth_nodes.calibration_images import DEFAULT_CALIBRATION_SAMPLES
    from depth_nodes.runtime.tensorrt_engine import DEFAULT_WORKSPACE_MB, SUPPORTED_TEXT
    parser = argparse.ArgumentParser(
        prog='python -m depth_nodes.build_engine',
        description='Build (and cache) a TensorRT engine from an ONNX depth model.',
        epilog=f'Needs {SUPPORTED_TEXT} and an NVIDIA GPU, except --check-only. See {DOCS}.')
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
                        help='int8: a training dataset by name (training.datasets registry; '
                             'run as python -m training.build_engine from a source checkout)')
    parser.add_argument('--calibration-split', default='train',
                        help='split of --calibration-dataset (default train)')
    parser.add_argument('--calibration-root', help='root directory of --calibration-dataset')
    parser.add_argument('--calibration-samples', type=_positive_int,
                        default=DEFAULT_CALIBRATION_SAMPLES,
                        help=f'at most this many calibration images '
                             f'(default {DEFAULT_CALIBRATION_SAMPLES})')
    parser.add_argument('--calibration-cache', type=Path,
                        help='int8 calibration table: read when no calibration data is given, '
                             'else written (default: found in the engine cache or beside the '
                             'model; written to the engine cache)')
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


def parse_args(argv=None, dataset_feeds: Callable | None = None) -> argparse.Namespace:
    """Parse and validate; usage errors exit with status 2 and say what is wrong.

    ``dataset_feeds``: training.calibration_feeds.dataset_calibration_feeds when run as
    ``python -m training.build_engine`` (the only way --calibration-dataset works).
    """
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
    if args.calibration_dataset and dataset_feeds is None:
        parser.error('--calibration-dataset reads a training dataset, which the installed '
                     'package does not include: run the same command as `python -m '
                     'training.build_engine ...` from a source checkout (source tools/env.sh)')
    args.engine_cache_dir = args.engine_cache_dir or default_cache_dir()
    args.calibration_table = None          # int8: the table to read (no calibration data)
    args.calibration_output = None         # int8: where a new table goes
    if args.precision == 'int8':
        from depth_nodes.runtime.tensorrt_engine import (calibration_cache_candidates,
                                                         find_calibration_table)
        in_cache = calibration_cache_candidates(args.onnx, args.engine_cache_dir)[0]
        if args.calibration_dir or args.calibration_dataset:
            args.calibration_output = args.calibration_cache or in_cache
        else:
            args.calibration_table = (args.calibration_cache if args.calibration_cache
                                      else find_calibration_table(args.onnx,
                                                                  args.engine_cache_dir))
            if args.calibration_table is None or not args.calibration_table.is_file():
                looked = ([args.calibration_cache] if args.calibration_cache else
                          calibration_cache_candidates(args.onnx, args.engine_cache_dir))
                parser.error('--precision int8 needs calibration data: --calibration-dir or '
                             '--calibration-dataset (no calibration table at '
                             + ', '.join(f"'{p}'" for p in looked) + ')')
    return args


def existing_tables(args: argparse.Namespace) -> list[Path]:
    """Calibration tables that new calibration data replaces or takes precedence over."""
    from depth_nodes.runtime.tensorrt_engine import calibration_cache_candidates
    candidates = calibration_cache_candidates(args.onnx, args.engine_cache_dir)
    if args.calibration_cache:
        candidates.insert(0, args.calibration_cache)
    return [p for p in dict.fromkeys(candidates) if p.is_file()]


def check_model(onnx_path: Path) -> list | None:
    """TensorRT-compatibility problems of the ONNX file; None when it cannot be checked (the
    onnx package is not installed)."""
    try:
        from depth_nodes.runtime.onnx_compat import check_tensorrt_compatibility
    except ImportError:
        return None
    return check_tensorrt_compatibility(onnx_path)


def build(args: argparse.Namespace, dataset_feeds: Callable | None = None) -> Path:
    """Build the engine described by ``args``; returns the engine path written."""
    from depth_nodes.core.model_spec import spec_from_metadata
    from depth_nodes.runtime import tensorrt_engine as trt_engine
    from depth_nodes.runtime.engine_cache import EngineCache, atomic_write_bytes

    interface = trt_engine.read_onnx_interface(args.onnx)
    calibrator = None
    table = args.calibration_table
    if args.precision == 'int8':
        spec, _ = spec_from_metadata(interface.metadata, interface.input_shapes,
                                     list(interface.output_names))
        batches = ()
        if args.calibration_output is not None:
            for existing in existing_tables(args):
                print(f"warning: calibrating anew: the new table '{args.calibration_output}' "
                      f"replaces or takes precedence over '{existing}' (without calibration "
                      'data an existing table is reused)', file=sys.stderr)
            if args.calibration_dir is not None:
                from depth_nodes.calibration_images import calibration_batches_from_directory
                batches = calibration_batches_from_directory(
                    args.calibration_dir, spec, args.calibration_samples)
            else:
                batches = dataset_feeds(args.calibration_dataset, spec, args.calibration_split,
                                        args.calibration_root, args.calibration_samples)
        calibrator = trt_engine.make_entropy_calibrator(
            batches, interface.input_shapes, table, args.device_id)
    import torch
    with torch.cuda.device(args.device_id):
        start = time.perf_counter()
        engine = trt_engine.build_serialized_engine(args.onnx, args.precision, args.workspace_mb,
                                                    args.timing_cache, calibrator)
        build_s = time.perf_counter() - start
    if calibrator is not None and args.calibration_output is not None:
        trt_engine.save_calibration_table(calibrator, args.calibration_output)
        table = args.calibration_output
        print(f'INT8 calibration table: {table} ({calibrator.feed.batches_used} images '
              'used)')
        in_cache = trt_engine.calibration_cache_candidates(args.onnx, args.engine_cache_dir)[0]
        if not args.no_engine_cache and table != in_cache:
            in_cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(in_cache, table.read_bytes())
            print(f'  copied to {in_cache}, where nodes look for it')
    elif table is not None:
        print(f'INT8 calibration table read from {table}')
    atomic_write_bytes(args.output, engine)
    print(f'built {args.precision} engine for {args.onnx} in {build_s:.1f} s: {args.output} '
          f'({len(engine) / 1e6:.1f} MB)')
    if not args.no_engine_cache:
        settings = trt_engine.BuilderSettings(args.workspace_mb)
        key = trt_engine.engine_key(args.onnx, args.precision,
                                    trt_engine.gpu_identity(args.device_id), settings, table)
        cached = EngineCache(args.engine_cache_dir).store(
            args.onnx, key, engine, {'build_seconds': round(build_s, 3)})
        print(f'stored in the engine cache: {cached}')
        if args.workspace_mb != trt_engine.DEFAULT_WORKSPACE_MB:
            print(f'note: built with --workspace-mb {args.workspace_mb}; nodes build with '
                  f'{trt_engine.DEFAULT_WORKSPACE_MB} MiB, a different cache key, so they will '
                  'not reuse this engine')
    return args.output


def main(argv=None, dataset_feeds: Callable | None = None) -> int:
    args = parse_args(argv, dataset_feeds)
    problems = check_model(args.onnx)
    if problems is None:
        if args.check_only:
            print(f'{args.onnx}: cannot check TensorRT compatibility: the onnx package is not '
                  'installed (pip install onnx)', file=sys.stderr)
            return 1
    elif problems:
        from depth_nodes.runtime.onnx_compat import format_problems
        print(f'{args.onnx}: {len(problems)} TensorRT compatibility problem(s):\n'
              + format_problems(problems), file=sys.stderr)
    if args.check_only:
        if not problems:
            print(f'{args.onnx}: no TensorRT 10 compatibility problems found')
        return 1 if problems else 0
    from depth_nodes.runtime.engine_cache import EngineCacheError
    from depth_nodes.runtime.tensorrt_engine import (SUPPORTED_TEXT, TensorRTBuildError,
                                                     availability)
    available, reason = availability()
    if not available:
        print(f'error: cannot build a TensorRT engine here: {reason}. This command needs '
              f'{SUPPORTED_TEXT} (Python bindings) and an NVIDIA GPU with CUDA; see {DOCS}. '
              'Without them the nodes run the ONNX model with ONNX Runtime '
              '(backend:=onnxruntime).', file=sys.stderr)
        return 1
    try:
        build(args, dataset_feeds)
    except (TensorRTBuildError, EngineCacheError, ModelLoadError, ValueError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except (RuntimeError, TypeError, AttributeError) as exc:   # torch (CUDA OOM), bindings
        print(f'error: TensorRT or CUDA failed: {type(exc).__name__}: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
