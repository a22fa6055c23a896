"""Export a trained (or freshly initialised) method to ONNX + torch.export, with a parity check.

    python -m training.export --checkpoint runs/eigen_nyu/checkpoints/last.pt --output m.onnx
    python -m training.export --untrained --config training/configs/eigen_nyu.yaml \
        --output eigen_untrained.onnx [key=value ...]

Writes ``m.onnx`` (opset 17, static shapes, one file, the ModelSpec JSON in metadata key
``depth_nodes.model_spec``) and ``m.pt2`` (torch.export program for the nodes' torch
backend), then runs the ONNX file in ONNX Runtime and the .pt2 in PyTorch against the
PyTorch module on the same inputs and fails when the largest absolute difference exceeds
the tolerance. Exit status 0 = exported and in agreement. ``--weights float16`` halves
both files (weights stored as float16, computed in float32; training/float16_weights.py).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from depth_nodes.core.model_spec import METADATA_KEY
from training.float16_weights import onnx_initializers_to_float16, parameters_as_float16
from training.models import DepthMethod, TrainContext, get_method_class

OPSET = 17
DEFAULT_TOLERANCE = 1e-4
WEIGHT_TYPES = ('float32', 'float16')
# Largest output change allowed from storing the weights as float16. Outputs here are
# normalised ([-1, 1]) or metres/log metres of order 1; the 2.6 M-parameter pix2pix demo
# moves by about 1e-3.
FLOAT16_TOLERANCE = 1e-2
TRAINING_METADATA_KEY = 'depth_nodes.training'


class ExportParityError(RuntimeError):
    """The exported model disagrees with PyTorch by more than the tolerance."""


def _checkpoint_method(path: Path, overrides: Sequence[str]) -> tuple[DepthMethod, dict]:
    """The trained method of a checkpoint, its method options changed by ``overrides``."""
    from training.checkpoint import load_checkpoint, method_from_checkpoint
    from training.config import apply_overrides
    checkpoint = load_checkpoint(path, map_location='cpu')
    if overrides:
        wrong = [item for item in overrides if not item.startswith('method.options.')]
        if wrong:
            raise ValueError(f'with a checkpoint, overrides set method options only '
                             f'(method.options.<name>=value), got {wrong}')
        options = apply_overrides({'method': {'options': checkpoint['method_options']}},
                                  overrides)['method']['options']
        checkpoint = {**checkpoint, 'method_options': options}
    return method_from_checkpoint(checkpoint, with_optimizers=False)


def export_onnx(source: DepthMethod | str | Path, output_path: str | Path, *,
                tolerance: float = DEFAULT_TOLERANCE, write_program: bool = True,
                provenance: dict[str, Any] | None = None, weights: str = 'float32',
                float16_tolerance: float = FLOAT16_TOLERANCE, overrides: Sequence[str] = ()
                ) -> dict[str, Any]:
    """Export a method object, or the method of a checkpoint file, to ``output_path``.

    ``overrides`` (a checkpoint only): ``method.options.<name>=value`` items that change the
    checkpoint's method options, for options that do not change the trained network, such as
    the spec's ``resize_mode``; the provenance records them.

    Returns a report: ``onnx`` and ``program`` paths, ``max_abs_error`` (ONNX Runtime vs
    PyTorch), ``program_max_abs_error`` (.pt2 vs PyTorch), ``tolerance``, ``spec`` (JSON).
    Raises ExportParityError when an error exceeds ``tolerance``.

    ``weights='float16'`` stores the weights at half the size (training.float16_weights).
    The float32 graph and the program's code are still checked against PyTorch at
    ``tolerance``; the rounding's own effect on the output, ``float16_max_abs_error`` (both
    files vs the float32 PyTorch module), must stay within ``float16_tolerance``.
    """
    if weights not in WEIGHT_TYPES:
        raise ValueError(f"weights '{weights}' not in {WEIGHT_TYPES}")
    if isinstance(source, DepthMethod):
        if overrides:
            raise ValueError('overrides apply to a checkpoint only')
        method, provenance = source, provenance or {}
    else:
        method, checkpoint = _checkpoint_method(Path(source), overrides)
        provenance = {'checkpoint': str(source), 'experiment': checkpoint['experiment'],
                      'step': checkpoint['step'], 'stage': checkpoint['stage'],
                      **({'overrides': list(overrides)} if overrides else {}),
                      **(provenance or {})}
    bundle = method.export_bundle()
    spec = bundle.spec
    output = Path(output_path)
    if output.suffix != '.onnx':
        raise ValueError(f"output '{output}' must end in .onnx")
    output.parent.mkdir(parents=True, exist_ok=True)

    model_proto = _onnx_proto(bundle.module, bundle.example_inputs, list(spec.input_names),
                              [spec.output_name])
    metadata = {METADATA_KEY: spec.to_json(),
                TRAINING_METADATA_KEY: json.dumps({'method': method.name, 'weights': weights,
                                                   **provenance},
                                                  sort_keys=True)}
    import onnx
    del model_proto.metadata_props[:]
    onnx.helper.set_model_props(model_proto, metadata)
    onnx.checker.check_model(model_proto)

    # Parity on the export inputs and on a second, independent draw.
    generator = torch.Generator().manual_seed(1)
    input_sets = [bundle.example_inputs,
                  tuple(torch.randn(t.shape, generator=generator) for t in bundle.example_inputs)]
    with torch.no_grad():
        references = [_first(bundle.module(*inputs)).numpy() for inputs in input_sets]
    float16_error = None
    if weights == 'float16':
        max_abs_error = _onnxruntime_error(model_proto.SerializeToString(), spec.input_names,
                                           spec.output_name, input_sets, references)
        model_proto, _ = onnx_initializers_to_float16(model_proto)
        onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(output))
    file_error = _onnxruntime_error(output, spec.input_names, spec.output_name, input_sets,
                                    references)
    if weights == 'float16':
        float16_error = file_error
    else:
        max_abs_error = file_error
    report = {'onnx': str(output), 'program': None, 'max_abs_error': max_abs_error,
              'program_max_abs_error': None, 'tolerance': tolerance, 'spec': spec.to_json(),
              'onnx_bytes': output.stat().st_size, 'weights': weights,
              'float16_max_abs_error': float16_error, 'float16_tolerance': float16_tolerance}
    if write_program:
        from depth_nodes.runtime.torch_engine import program_path_for, save_program
        program = program_path_for(output)
        module = bundle.module
        if weights == 'float16':
            module = parameters_as_float16(bundle.module)
            with torch.no_grad():
                rounded = [_first(module(*inputs)).numpy() for inputs in input_sets]
            report['float16_max_abs_error'] = max(
                float16_error, *(float(np.max(np.abs(r - ref)))
                                 for r, ref in zip(rounded, references)))
            references = rounded    # the program must compute what its module computes
        save_program(module, bundle.example_inputs, program, spec.to_json(),
                     spec.input_names, [spec.output_name])
        loaded = torch.export.load(str(program)).module()
        with torch.no_grad():
            report['program_max_abs_error'] = max(
                float(np.max(np.abs(_first(loaded(*inputs)).numpy() - ref)))
                for inputs, ref in zip(input_sets, references))
        report['program'] = str(program)
    if weights == 'float16' and not report['float16_max_abs_error'] <= float16_tolerance:
        raise ExportParityError(f"float16 weights change '{output}' by "
                                f"{report['float16_max_abs_error']:.3g}, more than "
                                f'{float16_tolerance:g}; export with float32 weights')
    worst = max(report['max_abs_error'], report['program_max_abs_error'] or 0.0)
    if not worst <= tolerance:
        raise ExportParityError(f"exported '{output}' differs from PyTorch by {worst:.3g} "
                                f'(ONNX Runtime {max_abs_error:.3g}, torch.export '
                                f"{report['program_max_abs_error']}), tolerance {tolerance:g}")
    return report


def export_untrained(output_path: str | Path, *, method: str | None = None,
                     config: str | Path | None = None, overrides: Sequence[str] = (),
                     seed: int = 0, tolerance: float = DEFAULT_TOLERANCE,
                     weights: str = 'float32') -> dict[str, Any]:
    """Export a freshly initialised model of a method (no training), e.g. to check that every
    method's graph converts to TensorRT. ``config``: an experiment YAML (its method and
    options, with ``overrides``); without it, ``method``'s default options."""
    if config is not None:
        from training.config import load_config
        experiment = load_config(config, overrides)
        if method is not None and method != experiment.method.name:
            raise ValueError(f"--method {method} but config '{config}' trains "
                             f'{experiment.method.name}')
        cls, options = get_method_class(experiment.method.name), experiment.method_config()
    elif method is not None:
        if overrides:
            raise ValueError('overrides need a --config')
        cls = get_method_class(method)
        options = cls.config_class()
    else:
        raise ValueError('give a method name or a config')
    torch.manual_seed(seed)
    instance = cls(options, TrainContext())
    return export_onnx(instance, output_path, tolerance=tolerance, weights=weights,
                       provenance={'untrained': True, 'seed': seed,
                                   'config': str(config) if config else None})


def _onnx_proto(module, example_inputs, input_names, output_names):
    """torch.onnx.export (dynamo) to an in-memory ModelProto at OPSET, static shapes."""
    quiet = io.StringIO()
    loggers = [logging.getLogger(n) for n in ('torch.onnx', 'torch.export', 'onnxscript')]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter('ignore')
            program = torch.onnx.export(module, tuple(example_inputs), dynamo=True,
                                        opset_version=OPSET, input_names=input_names,
                                        output_names=output_names, external_data=False,
                                        verbose=False)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    proto = program.model_proto
    opset = {o.domain: o.version for o in proto.opset_import}.get('', None)
    if opset != OPSET:
        raise RuntimeError(f'the exporter produced opset {opset}, not {OPSET}')
    return proto


def _onnxruntime_error(model: Path | bytes, input_names, output_name, input_sets,
                       references) -> float:
    """Largest |ONNX Runtime - reference| of a model file or serialised model."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                   providers=['CPUExecutionProvider'])
    worst = 0.0
    for inputs, reference in zip(input_sets, references):
        feeds = {n: t.numpy() for n, t in zip(input_names, inputs)}
        out = session.run([output_name], feeds)[0]
        if out.shape != reference.shape:
            name = 'the float32 graph' if isinstance(model, bytes) else f"'{model}'"
            raise ExportParityError(f"{name} outputs shape {out.shape}, PyTorch "
                                    f'{reference.shape}')
        worst = max(worst, float(np.max(np.abs(out - reference))))
    return worst


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.export',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', help='training checkpoint (.pt) to export')
    parser.add_argument('--untrained', action='store_true',
                        help='export a freshly initialised model (with --config / --method)')
    parser.add_argument('--config', help='experiment YAML (with --untrained)')
    parser.add_argument('--method', help='method name (with --untrained)')
    parser.add_argument('--seed', type=int, default=0, help='initialisation seed (--untrained)')
    parser.add_argument('--output', required=True, help='model.onnx to write (+ model.pt2)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest allowed |ONNX Runtime - PyTorch| (default %(default)g)')
    parser.add_argument('--weights', choices=WEIGHT_TYPES, default='float32',
                        help='how the files store the weights: float16 halves them; inference '
                             'stays float32 (default %(default)s)')
    parser.add_argument('--float16-tolerance', type=float, default=FLOAT16_TOLERANCE,
                        help='largest allowed output change from float16 weights '
                             '(default %(default)g)')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='config overrides (with --untrained --config); with --checkpoint, '
                             'method.options.<name>=value for options that leave the network '
                             'as trained (e.g. method.options.resize_mode=letterbox)')
    args = parser.parse_args(argv)
    if bool(args.checkpoint) == bool(args.untrained):
        parser.error('give exactly one of --checkpoint or --untrained')
    if args.untrained and not (args.config or args.method):
        parser.error('--untrained needs --config or --method')
    if args.checkpoint and Path(args.checkpoint).suffix in ('.onnx', '.pt2'):
        parser.error(f'--checkpoint {args.checkpoint} is an exported model; give the training '
                     'checkpoint it came from (runs/<experiment>/checkpoints/last.pt)')
    try:
        if args.checkpoint:
            report = export_onnx(args.checkpoint, args.output, tolerance=args.tolerance,
                                 weights=args.weights,
                                 float16_tolerance=args.float16_tolerance,
                                 overrides=args.overrides)
        else:
            report = export_untrained(args.output, method=args.method, config=args.config,
                                      overrides=args.overrides, seed=args.seed,
                                      tolerance=args.tolerance, weights=args.weights)
    except ExportParityError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(f"wrote {report['onnx']} ({report['onnx_bytes'] / 1e6:.2f} MB) and "
          f"{report['program']}")
    print(f"max abs error: ONNX Runtime vs PyTorch {report['max_abs_error']:.3g}, "
          f"torch.export vs PyTorch {report['program_max_abs_error']:.3g} "
          f"(tolerance {report['tolerance']:g})")
    if report['weights'] == 'float16':
        print(f"float16 weights change the output by at most "
              f"{report['float16_max_abs_error']:.3g} (tolerance "
              f"{report['float16_tolerance']:g})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
