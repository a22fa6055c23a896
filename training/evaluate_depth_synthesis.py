"""PSNR / SSIM of synthesised depth maps (Table 1 of the contrastive CycleGAN paper, Suarez et
al.) and the depth metrics in metres, for models whose output is a normalised depth image.

    python -m training.evaluate_depth_synthesis --model models/cyclegan_synthetic.onnx \
        --model runs/cyclegan_synthetic_plain_demo/model.onnx --dataset synthetic \
        --split test --dataset-option scene=indoor --dataset-option height=96 \
        --dataset-option width=128 --dataset-option outputs=[rgb,depth] --output table.json

Protocol, per test image and model (the numbers describe what the nodes run: exported models
go through depth_nodes' runtime, checkpoints (.pt) through the same estimator in PyTorch):

- synthesis quality: the model's raw output at its input size, mapped from its output_range
  to [0, 1], against the ground-truth depth resized to that size (area-averaged over known
  pixels) and normalised the way the method's training data was (linear over the spec's
  [min_depth, max_depth], clipped, near = 1 when near_is_bright, unknown depth = far):
  PSNR (dB) and SSIM (7x7 window) with data range 1 (training.metrics.psnr / ssim);
- depth: the output converted to metres (depth_nodes.core.postprocess) at the image's
  resolution against the ground truth, with the dataset's protocol of training.evaluate
  (Abs Rel, RMSE, delta < 1.25^k ...).

Metrics are averaged over images; ``--model`` may be repeated to put several models (the
proposed loss set and its baselines) in one table; ``--baseline train-mean`` adds the
per-pixel mean depth of the training split as a constant prediction.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from depth_nodes.core.postprocess import crop_letterbox
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.runtime.estimator import MonoDepthEstimator
from training.metrics import (DEPTH_METRICS, DepthEvalProtocol, MetricAverager, depth_metrics,
                              psnr, ssim)
from training.models.base import resize_depth

SYNTHESIS_METRICS = ('psnr', 'ssim')


def normalized_ground_truth(depth: np.ndarray, spec, height: int, width: int) -> np.ndarray:
    """Ground-truth metres -> the [0, 1] depth image a normalized_depth model should output."""
    resized = resize_depth(depth, height, width)
    with np.errstate(invalid='ignore'):
        known = np.isfinite(resized) & (resized > 0)
    clipped = np.clip(np.where(known, resized, spec.max_depth), spec.min_depth, spec.max_depth)
    t = (clipped - spec.min_depth) / (spec.max_depth - spec.min_depth)
    return (1.0 - t if spec.near_is_bright else t).astype(np.float64)


def synthesized_image(raw: np.ndarray, spec) -> np.ndarray:
    """Raw normalized_depth output -> [0, 1] (0 = output_range[0]), clipped."""
    lo, hi = spec.output_range
    value = raw.astype(np.float64) * spec.output_scale + spec.output_shift
    return np.clip((value - lo) / (hi - lo), 0.0, 1.0)


Prediction = tuple[np.ndarray, np.ndarray]   # ([0, 1] depth image at model size, metres)


def estimator_synthesis(estimator: MonoDepthEstimator) -> Callable[[Mapping], Prediction]:
    """A model's synthesised depth image (raw output at its input size) and its metres at the
    image's resolution, from one inference."""
    from training.evaluate import EVALUATION_RANGE, MONO_INPUTS
    spec = estimator.spec
    if spec.output_kind != 'normalized_depth':
        raise ValueError(f"PSNR / SSIM of depth images need a normalized_depth model; this "
                         f"one outputs '{spec.output_kind}'")
    key, encoding = MONO_INPUTS[spec.input_kind]

    def predict(sample: Mapping[str, Any]) -> Prediction:
        if sample.get(key) is None:
            raise KeyError(f"sample '{sample.get('name', '?')}' has no '{key}' image")
        image = sample[key]
        raw, _ = estimator.infer(image_to_tensor(image, encoding, spec))
        metres = estimator.raw_to_result(raw, image.shape[0], image.shape[1], None, None, 0.0,
                                         EVALUATION_RANGE).depth
        # A letterboxed model: the depth image is the part of the output that sees the image.
        raw = crop_letterbox(raw, image.shape[0], image.shape[1], spec)
        return synthesized_image(raw, spec), metres
    return predict


def train_mean_synthesis(mean_depth: np.ndarray, spec) -> Callable[[Mapping], Prediction]:
    """The per-pixel mean training depth (training.evaluate.train_mean_depth) as a constant
    prediction, as a depth image of the model's size and in metres."""
    def predict(sample: Mapping[str, Any]) -> Prediction:
        height, width = sample['depth'].shape[:2]
        metres = cv2.resize(mean_depth, (width, height), interpolation=cv2.INTER_LINEAR)
        return normalized_ground_truth(mean_depth, spec, *spec.input_size), metres
    return predict


def evaluate_synthesis(predict: Callable[[Mapping], Prediction], dataset: Sequence, spec,
                       protocol: DepthEvalProtocol, limit: int = 0, progress: bool = False
                       ) -> dict[str, float]:
    """Mean PSNR, SSIM and depth metrics of one predictor over the first ``limit`` images;
    ``spec`` gives the normalisation of the ground-truth depth images."""
    from tqdm import tqdm
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    averager = MetricAverager()
    for index in tqdm(range(count), disable=not progress, unit='image'):
        sample = dataset[index]
        if sample.get('depth') is None:
            raise KeyError(f"sample '{sample.get('name', index)}' has no ground-truth depth")
        synthesized, metres = predict(sample)
        truth = normalized_ground_truth(sample['depth'], spec, *synthesized.shape)
        metrics = {'psnr': psnr(synthesized, truth, data_range=1.0),
                   'ssim': ssim(synthesized, truth, data_range=1.0)}
        try:
            metrics.update(depth_metrics(metres, sample['depth'], protocol))
        except ValueError as exc:
            if 'ground-truth' not in str(exc):
                raise
        averager.add(metrics)
    return {**averager.means(), 'images': averager.images}


def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    from training.evaluate import metrics_table
    return metrics_table(results, [*SYNTHESIS_METRICS, *DEPTH_METRICS], 9)


def main(argv: Sequence[str] | None = None) -> int:
    from training.evaluate import (DATASET_PROTOCOLS, EVALUATION_ERRORS, _parse_options,
                                   add_report_arguments, add_split_arguments,
                                   evaluation_error, load_estimator, protocol_report,
                                   train_mean_depth, write_report)
    parser = argparse.ArgumentParser(prog='python -m training.evaluate_depth_synthesis',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', action='append', required=True,
                        help='.onnx / .pt2 / model name / training checkpoint .pt; repeatable')
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--dataset', required=True, help='training.datasets registry name')
    add_split_arguments(parser)
    parser.add_argument('--baseline', choices=('none', 'train-mean'), default='none',
                        help="train-mean: the per-pixel mean depth of the dataset's train "
                             'split (same options), as a constant prediction')
    parser.add_argument('--baseline-samples', type=int, default=0,
                        help='average the first N training samples (0 = all)')
    add_report_arguments(parser)
    args = parser.parse_args(argv)

    from training.datasets import build_dataset
    try:
        options = _parse_options(args.dataset_option)
        dataset = build_dataset(args.dataset, args.split, args.root, **options)
        protocol = DATASET_PROTOCOLS.get(args.dataset, DepthEvalProtocol())
        results: dict[str, dict[str, Any]] = {}
        spec = None
        for model in args.model:
            estimator = load_estimator(model, args.backend)
            spec = spec or estimator.spec
            results[model] = evaluate_synthesis(estimator_synthesis(estimator), dataset,
                                                estimator.spec, protocol, args.limit,
                                                not args.no_progress)
        if args.baseline == 'train-mean':
            train = build_dataset(args.dataset, 'train', args.root, **options)
            mean = train_mean_depth(train, args.baseline_samples)
            # Normalised like the first model's training data, at its input size.
            results['train-mean'] = evaluate_synthesis(train_mean_synthesis(mean, spec),
                                                       dataset, spec, protocol, args.limit,
                                                       not args.no_progress)
    except EVALUATION_ERRORS as exc:
        return evaluation_error(exc)
    images = next(iter(results.values()))['images']
    print(f'{args.dataset}/{args.split}: {images} images; PSNR/SSIM on [0, 1] normalised '
          f'depth at the model size; depth metrics in metres, crop {protocol.crop}, '
          f'depth ({protocol.min_depth:g}, {protocol.max_depth:g}] m')
    print(format_table(results))
    if args.output:
        report = {'dataset': args.dataset, 'split': args.split, 'dataset_options': options,
                  'protocol': {k: v for k, v in protocol_report(protocol).items()
                               if k in ('crop', 'min_depth', 'max_depth')},
                  'models': results}
        write_report(args.output, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
