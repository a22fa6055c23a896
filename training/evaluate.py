"""Evaluate a depth model on a dataset: ``python -m training.evaluate --model M --dataset D``.

    python -m training.evaluate --model models/eigen_synthetic.onnx --dataset synthetic \
        --split test --baseline train-mean --output metrics.json
    python -m training.evaluate --model runs/eigen_nyu/checkpoints/last.pt \
        --config training/configs/eigen_nyu.yaml --split test

``--model``: an exported .onnx / .pt2 (or a bare name under models/), run through the same
runtime the nodes use (depth_nodes.runtime.model.open_model + MonoDepthEstimator), so the
numbers describe what the robot runs; or a training checkpoint (.pt), whose network runs in
PyTorch behind the same estimator (same pre- and post-processing). Predictions are made at
the image's resolution and compared with its full-resolution ground truth.

``--baseline train-mean`` adds the baseline of Eigen et al.'s tables: the per-pixel mean
depth map of the training split, predicted for every image. Prints a table and writes JSON.

Semi-dense models (input_kind 'semidense') and the classical densification baselines
(``--baseline nearest|linear|inpaint|log_linear|neighbourhood|blend``, repeatable) get the
ground truth at the pixels of ``--semidense-mask`` (gradient: LSD-SLAM-like; random:
uniform) at ``--semidense-density`` as input, and the paper's MAPE, normalised RMSE and PSNR
besides the depth metrics (training/interpolation_baselines.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
import yaml

from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from depth_nodes.runtime.estimator import POST_PROCESSES, MonoDepthEstimator
from depth_nodes.runtime.model import LoadedModel
from training.metrics import (DEPTH_METRICS, KITTI_PROTOCOL, NYU_PROTOCOL, DepthEvalProtocol,
                              MetricAverager, depth_metrics)
from training.interpolation_baselines import BASELINES
from training.models.base import resize_depth

# The range the estimator may output during evaluation: the protocol (its cap and clamping)
# decides what counts, not the node's publishing range.
EVALUATION_RANGE = (1e-6, 1e6)

# Default protocol per dataset. Middlebury's motorcycle is one image of a scene unlike any
# training set and with its own scale, so monocular models are compared after median scaling.
DATASET_PROTOCOLS: dict[str, DepthEvalProtocol] = {
    'nyu_v2': NYU_PROTOCOL,
    'kitti': KITTI_PROTOCOL,
    'kitti_eigen': KITTI_PROTOCOL,
    'middlebury_motorcycle': DepthEvalProtocol(median_scaling=True),
}

# Which sample image feeds a mono model, by its spec's input_kind: (sample key, encoding).
MONO_INPUTS = {'rgb': ('rgb', 'rgb8'), 'gray': ('rgb', 'rgb8'), 'nir': ('nir', 'mono8')}


class ModuleEngine:
    """The runtime's Engine protocol around an in-memory PyTorch module (a checkpoint)."""
    backend = 'torch'

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, source: Path):
        self._module = module.eval()
        self.model_path = Path(source)
        self.input_shapes = {n: (1, spec.input_channels, spec.input_height, spec.input_width)
                             for n in spec.input_names}
        self.output_names = (spec.output_name,)
        self.metadata = {METADATA_KEY: spec.to_json()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self._module(*[torch.from_numpy(np.ascontiguousarray(feeds[n]))
                                 for n in self.input_shapes])
        out = out[0] if isinstance(out, (tuple, list)) else out
        return {self.output_names[0]: out.numpy()}

    def describe(self) -> str:
        return f'torch {torch.__version__} (checkpoint {self.model_path.name})'


def load_estimator(model: str, backend: str = 'onnxruntime', native_resolution: bool = True,
                   spec_overrides: Mapping[str, Any] | None = None,
                   post_process: str = 'none') -> MonoDepthEstimator:
    """An estimator for an exported model (path or name) or a training checkpoint (.pt);
    ``spec_overrides`` change spec fields as the node's ``spec.<field>`` parameters do,
    ``post_process`` is the node's parameter of that name (monocular models)."""
    if Path(model).suffix == '.pt':
        from training.checkpoint import method_from_checkpoint
        method, _ = method_from_checkpoint(Path(model), with_optimizers=False)
        bundle = method.export_bundle()
        spec = bundle.spec.with_overrides(spec_overrides or {})
        engine = ModuleEngine(bundle.module, spec, Path(model))
        loaded = LoadedModel(engine, spec, True, 'training checkpoint')
    else:
        from depth_nodes.runtime.engine import EngineOptions
        from depth_nodes.runtime.model import open_model
        loaded = open_model(model, backend, EngineOptions(intra_op_threads=1),
                            spec_overrides=spec_overrides)
    if loaded.spec.input_kind == 'semidense':
        if post_process != 'none':
            raise ValueError(f"post_process '{post_process}' is for monocular models")
        from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator
        return SemiDenseEstimator(loaded, output_resolution='input',
                                  native_resolution=native_resolution)
    if loaded.spec.input_kind not in MONO_INPUTS:
        raise ValueError(f"training.evaluate handles monocular models ({sorted(MONO_INPUTS)}); "
                         f"this model's input_kind is '{loaded.spec.input_kind}'")
    return MonoDepthEstimator(loaded, output_resolution='input', post_process=post_process)


def estimator_predictor(estimator: MonoDepthEstimator) -> Callable[[Mapping], np.ndarray]:
    if estimator.spec.input_kind == 'semidense':
        from training.interpolation_baselines import semidense_model_predictor
        return semidense_model_predictor(estimator, EVALUATION_RANGE)
    key, encoding = MONO_INPUTS[estimator.spec.input_kind]

    def predict(sample: Mapping[str, Any]) -> np.ndarray:
        if sample.get(key) is None:
            raise KeyError(f"sample '{sample.get('name', '?')}' has no '{key}' image, which "
                           f'this {estimator.spec.input_kind} model needs')
        return estimator.estimate(sample[key], encoding, depth_range=EVALUATION_RANGE).depth
    return predict


def train_mean_depth(dataset: Sequence, limit: int = 0) -> np.ndarray:
    """Per-pixel mean of the known depths over a dataset (at its first sample's size).

    Pixels never known in any sample take the mean of all known depths.
    """
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    if count == 0:
        raise ValueError('the baseline dataset is empty')
    total = counts = None
    for index in range(count):
        depth = np.asarray(dataset[index]['depth'], dtype=np.float64)
        if total is None:
            total, counts = np.zeros(depth.shape), np.zeros(depth.shape)
        if depth.shape != total.shape:
            depth = resize_depth(depth, *total.shape).astype(np.float64)
        known = np.isfinite(depth) & (depth > 0)
        total[known] += depth[known]
        counts[known] += 1
    if not counts.any():
        raise ValueError('the baseline dataset has no known depth')
    mean = np.full(total.shape, total.sum() / counts.sum())
    seen = counts > 0
    mean[seen] = total[seen] / counts[seen]
    return mean.astype(np.float32)


def mean_depth_predictor(mean_depth: np.ndarray) -> Callable[[Mapping], np.ndarray]:
    def predict(sample: Mapping[str, Any]) -> np.ndarray:
        height, width = sample['depth'].shape[:2]
        return cv2.resize(mean_depth, (width, height), interpolation=cv2.INTER_LINEAR)
    return predict


def evaluate(predictors: Mapping[str, Callable[[Mapping], np.ndarray]], dataset: Sequence,
             protocol: DepthEvalProtocol, limit: int = 0, progress: bool = True,
             metrics: Callable[..., dict[str, float]] = depth_metrics
             ) -> dict[str, dict[str, float]]:
    """Mean per-image metrics of each predictor over the dataset (same images for all)."""
    from tqdm import tqdm
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    averagers = {name: MetricAverager() for name in predictors}
    seconds = {name: 0.0 for name in predictors}
    skipped = 0
    for index in tqdm(range(count), disable=not progress, unit='image'):
        sample = dataset[index]
        if sample.get('depth') is None:
            raise KeyError(f"sample '{sample.get('name', index)}' has no ground-truth depth")
        for name, predict in predictors.items():
            start = time.perf_counter()
            pred = predict(sample)
            seconds[name] += time.perf_counter() - start
            try:
                averagers[name].add(metrics(pred, sample['depth'], protocol))
            except ValueError as exc:
                if 'ground-truth' not in str(exc):
                    raise
                skipped += 1   # an image without any valid ground truth in the protocol
    results = {}
    for name, averager in averagers.items():
        results[name] = {**averager.means(), 'images': averager.images,
                         'seconds_per_image': seconds[name] / max(count, 1)}
    if skipped:
        print(f'note: {skipped // max(len(predictors), 1)} image(s) had no valid ground truth '
              'under the protocol and were skipped', file=sys.stderr)
    return results


def metrics_table(results: Mapping[str, Mapping[str, float]], columns: Sequence[str],
                  column_width: int) -> str:
    """One row per predictor (name, then its metrics in ``columns``; NaN where missing)."""
    width = max(len(n) for n in results) + 2
    lines = [' ' * width + ' '.join(f'{c:>{column_width}}' for c in columns)]
    for name, metrics in results.items():
        lines.append(f'{name:<{width}}' + ' '.join(
            f'{metrics.get(c, math.nan):>{column_width}.4f}' for c in columns))
    return '\n'.join(lines)


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    columns = [*DEPTH_METRICS, 'coverage']
    if any('median_scale' in r for r in results.values()):
        columns.append('median_scale')
    columns += [c for c in ('mape', 'rmse_norm', 'psnr') if any(c in r for r in results.values())]
    return metrics_table(results, columns, 11)


def semidense_summary(by_density: Mapping[float, Mapping[str, Mapping[str, float]]],
                      mask: str) -> str:
    """The paper's table: per density and predictor, MAPE (%), RMSE on max-normalised
    depth, PSNR (dB) and seconds per image; the best MAPE and RMSE of a density marked *."""
    lines = [f"{'input':<16}{'predictor':<10}{'MAPE %':>9}{'RMSE':>9}{'PSNR dB':>9}"
             f"{'s/image':>9}"]
    for density, results in by_density.items():
        best = {k: min(r[k] for r in results.values()) for k in ('mape', 'rmse_norm')}
        for name, r in results.items():
            marks = {k: '*' if r[k] == best[k] else ' ' for k in best}
            lines.append(f"{f'{mask} {100 * density:g} %':<16}{name:<10}"
                         f"{r['mape']:>8.3f}{marks['mape']}{r['rmse_norm']:>8.4f}"
                         f"{marks['rmse_norm']}{r['psnr']:>9.2f}"
                         f"{r['seconds_per_image']:>9.3f}")
    return '\n'.join(lines)


def _parse_options(items: Sequence[str], what: str = 'dataset option') -> dict[str, Any]:
    options = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f"{what} '{item}' is not key=value")
        options[key] = yaml.safe_load(value)
    return options


# --- the command line shared by the evaluation scripts -----------------------------------

# Bad input (unknown dataset, missing file, wrong model kind): one line on stderr, exit 2.
EVALUATION_ERRORS = (ValueError, KeyError, OSError, RuntimeError)


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """--split, --root, --dataset-option, --limit: which images of the dataset are evaluated."""
    parser.add_argument('--split', default='test')
    parser.add_argument('--root', help='dataset directory')
    parser.add_argument('--dataset-option', action='append', default=[], metavar='KEY=VALUE',
                        help='dataset keyword argument (YAML value); repeatable')
    parser.add_argument('--limit', type=int, default=0, help='evaluate the first N images')


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--output', help='write the results as JSON here')
    parser.add_argument('--no-progress', action='store_true')


def evaluation_error(exc: Exception) -> int:
    """The exit status of a run stopped by bad input (EVALUATION_ERRORS), after saying why."""
    print(f'error: {exc}', file=sys.stderr)
    return 2


def protocol_report(protocol: DepthEvalProtocol) -> dict[str, Any]:
    """The protocol as JSON values: an infinite depth cap (none) is null."""
    return {k: (None if isinstance(v, float) and math.isinf(v) else v)
            for k, v in dataclasses.asdict(protocol).items()}


def write_report(path: str, report: Mapping[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f'wrote {path}')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.evaluate',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='.onnx / .pt2 / model name / .pt')
    parser.add_argument('--backend', default='onnxruntime',
                        help='runtime backend for exported models (default %(default)s)')
    parser.add_argument('--spec', action='append', default=[], metavar='FIELD=VALUE',
                        help="override a field of the model's spec, as the node's spec.<field> "
                             'parameters do (e.g. resize_mode=letterbox); repeatable')
    parser.add_argument('--post-process', default='none', choices=POST_PROCESSES,
                        help="the node's post_process parameter: 'flip' also runs the mirrored "
                             "image and averages (default %(default)s)")
    parser.add_argument('--config', help='experiment YAML whose data section gives the '
                                         'dataset, root and options: val_options for the '
                                         'evaluated split, options for the baseline')
    parser.add_argument('--dataset', help='dataset name (training.datasets registry)')
    parser.add_argument('--bag', action='append', metavar='PATH',
                        help='with --config: evaluate on these recordings (its held-out '
                             'split: --split val/test; repeatable)')
    parser.add_argument('--topic', action='append', metavar='ROLE:=TOPIC',
                        help='with --config and --bag: the topic of a role (repeatable)')
    add_split_arguments(parser)
    parser.add_argument('--baseline', action='append', default=[],
                        choices=('none', 'train-mean') + BASELINES,
                        help='baseline(s) to evaluate on the same images; repeatable')
    parser.add_argument('--semidense-mask', choices=('gradient', 'random', 'sample'),
                        default='gradient', help='input pixels of semi-dense models and '
                        'interpolation baselines (default %(default)s)')
    parser.add_argument('--semidense-density', type=float, nargs='+', default=[0.1],
                        help='fraction(s) of pixels given as input, e.g. 0.01 0.05 0.1: '
                             'one table per density and a summary (default 0.1)')
    parser.add_argument('--native-resolution', action=argparse.BooleanOptionalAction,
                        default=True, help='semidense models: run at the image\'s own '
                        'resolution (tiles), as the node does by default; --no-native-resolution: '
                        'on the model\'s grid and back')
    parser.add_argument('--baseline-dataset', help='dataset of the train-mean baseline '
                                                   '(default: --dataset)')
    parser.add_argument('--baseline-split', default='train')
    parser.add_argument('--baseline-option', action='append', default=None,
                        metavar='KEY=VALUE', help='options of the baseline dataset '
                                                  '(default: the dataset options)')
    parser.add_argument('--baseline-samples', type=int, default=0,
                        help='average the first N training samples (0 = all)')
    parser.add_argument('--crop', choices=('none', 'eigen_nyu', 'garg', 'eigen_kitti'))
    parser.add_argument('--min-depth', type=float)
    parser.add_argument('--max-depth', type=float, help='ground-truth cap, e.g. 80 (KITTI)')
    parser.add_argument('--median-scaling', action=argparse.BooleanOptionalAction,
                        default=None, help='scale each prediction by median(gt)/median(pred)')
    add_report_arguments(parser)
    args = parser.parse_args(argv)

    from training.datasets import build_dataset
    try:
        # With --config: its val_options (else options) for the evaluated split, and its
        # options (the training data) for the train-mean baseline.
        configured: dict[str, Any] = {'dataset': None, 'root': None, 'options': {},
                                      'train_options': {}}
        if args.config:
            from training.config import load_config
            from training.train import bag_overrides
            experiment = load_config(args.config, bag_overrides(args.bag, args.topic))
            cfg = experiment.data
            configured = {'dataset': cfg.dataset, 'root': cfg.root,
                          'options': dict(cfg.options if cfg.val_options is None
                                          else cfg.val_options),
                          'train_options': dict(cfg.options)}
            if cfg.source == 'rosbag':     # training/datasets/rosbag.py
                bag_options = {'bags': list(cfg.bags), 'topics': dict(cfg.topics),
                               'method': experiment.method.name, 'holdout': cfg.holdout,
                               'sync_tolerance': cfg.sync_tolerance}
                configured = {'dataset': 'rosbag', 'root': cfg.root, 'options': bag_options,
                              'train_options': bag_options}
        elif args.bag or args.topic:
            parser.error('--bag and --topic need --config (a training/configs/*_bag.yaml)')
        dataset_name = args.dataset or configured['dataset']
        if not dataset_name:
            parser.error('give --dataset (or --config)')
        data = configured if dataset_name == configured['dataset'] else \
            {'dataset': dataset_name, 'root': None, 'options': {}, 'train_options': {}}
        options = {**data['options'], **_parse_options(args.dataset_option)}
        root = args.root or data['root']
        protocol = DATASET_PROTOCOLS.get(dataset_name, DepthEvalProtocol())
        changes = {k: v for k, v in (('crop', args.crop), ('min_depth', args.min_depth),
                                     ('max_depth', args.max_depth),
                                     ('median_scaling', args.median_scaling)) if v is not None}
        protocol = dataclasses.replace(protocol, **changes)

        estimator = load_estimator(args.model, args.backend, args.native_resolution,
                                   _parse_options(args.spec, 'spec override'),
                                   args.post_process)
        dataset = build_dataset(dataset_name, args.split, root, **options)
        predictors = {'model': estimator_predictor(estimator)}
        interpolations = [b for b in args.baseline if b not in ('none', 'train-mean')]
        semidense = estimator.spec.input_kind == 'semidense' or bool(interpolations)
        metrics = depth_metrics
        if semidense:
            from training import interpolation_baselines as interpolation
            predictors.update({b: interpolation.fill_predictor(b) for b in interpolations})
            metrics = interpolation.interpolation_metrics
            if args.median_scaling is None:   # the input carries the scale
                protocol = dataclasses.replace(protocol, median_scaling=False)
        baseline_info = None
        if 'train-mean' in args.baseline:
            base_name = args.baseline_dataset or dataset_name
            if args.baseline_option is not None:
                base_options = _parse_options(args.baseline_option)
            elif args.config and base_name == configured['dataset']:
                # The training data of the config (the model's own train split).
                base_options = dict(configured['train_options'])
                if base_name == dataset_name:
                    base_options.update(_parse_options(args.dataset_option))
            elif base_name == dataset_name:
                base_options = options
            else:
                base_options = {}
            base_root = root if base_name == dataset_name else (
                configured['root'] if base_name == configured['dataset'] else None)
            train = build_dataset(base_name, args.baseline_split, base_root, **base_options)
            predictors['train-mean'] = mean_depth_predictor(
                train_mean_depth(train, args.baseline_samples))
            used = len(train) if args.baseline_samples <= 0 else min(args.baseline_samples,
                                                                     len(train))
            baseline_info = {'kind': 'train-mean', 'dataset': base_name,
                             'split': args.baseline_split, 'samples': used}
        if semidense:   # the same deterministic inputs for every predictor, per density
            by_density = {d: evaluate(predictors, interpolation.SemiDenseInputs(
                dataset, args.semidense_mask, d), protocol, args.limit, not args.no_progress,
                metrics) for d in args.semidense_density}
            results = by_density[args.semidense_density[0]]
        else:
            results = evaluate(predictors, dataset, protocol, args.limit, not args.no_progress,
                               metrics)
    except EVALUATION_ERRORS as exc:
        return evaluation_error(exc)

    print(f"{dataset_name}/{args.split}: {results['model']['images']} images; protocol: "
          f'depth ({protocol.min_depth:g}, {protocol.max_depth:g}] m, crop {protocol.crop}, '
          f"median scaling {'ON' if protocol.median_scaling else 'off'}; "
          f'model on {estimator.model.engine.describe()}')
    if semidense:
        for density, density_results in by_density.items():
            print(f'{args.semidense_mask} mask, {100 * density:g} % of the pixels:')
            print(format_table(density_results))
        print(semidense_summary(by_density, args.semidense_mask))
    else:
        print(format_table(results))
    if 'train-mean' in results and results['train-mean']['abs_rel'] > 0:
        ratio = results['model']['abs_rel'] / results['train-mean']['abs_rel']
        print(f'abs_rel model / train-mean baseline = {ratio:.3f}')
    if args.output:
        report = {'model': args.model, 'engine': estimator.model.engine.describe(),
                  'spec': json.loads(estimator.spec.to_json()),
                  'post_process': args.post_process, 'dataset': dataset_name,
                  'split': args.split, 'dataset_options': options,
                  'protocol': protocol_report(protocol),
                  'metrics': results['model'],
                  'baseline': ({**baseline_info, 'metrics': results['train-mean']}
                               if baseline_info else None)}
        if semidense:
            densities = args.semidense_density
            report['semidense_input'] = {'mask': args.semidense_mask, 'density': (
                densities[0] if len(densities) == 1 else densities)}
            report['baselines'] = {b: results[b] for b in interpolations}
            report['by_density'] = {f'{d:g}': r for d, r in by_density.items()}
        write_report(args.output, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
