"""Evaluate NIR -> RGB translation and the depth it gives:
``python -m training.evaluate_nir_translation --translation CTN --depth-model DPN ...``.

    python -m training.evaluate_nir_translation --translation models/ctn_synthetic.onnx \
        --depth-model models/dpn_synthetic.onnx --dataset synthetic --split test \
        --dataset-option scene=outdoor --dataset-option height=128 \
        --dataset-option width=256 --dataset-option size=200 --output metrics.json

On a dataset with registered NIR, RGB and depth (the synthetic scenes), every model runs
through the nodes' runtime (open_model, NirDepthEstimator, MonoDepthEstimator):

- translation quality, at the translation model's resolution against the true RGB resized
  the same way: PSNR and SSIM (8-bit, data range 255) of the pseudo-RGB, and of the gray
  NIR image itself shown as RGB (the "no translation" baseline);
- depth metrics (training/metrics.py) of three inputs to the same depth model, with the
  sample's camera for the metric scale:
    ``rgb``             RGB -> depth model (the upper bound: the camera it was trained for)
    ``nir_translated``  NIR -> CTN -> pseudo-RGB -> depth model (method:=nir)
    ``nir_gray``        NIR fed straight to the depth model as a gray image (baseline)
  and the share of the gray-NIR gap the translation recovers,
  (nir_gray - nir_translated) / (nir_gray - rgb), per metric.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from depth_nodes.core.preprocess import resize_image
from depth_nodes.runtime.engine import EngineOptions
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.nir_estimator import NirDepthEstimator
from training.evaluate import (DATASET_PROTOCOLS, EVALUATION_ERRORS, EVALUATION_RANGE,
                               _parse_options, add_report_arguments, add_split_arguments,
                               evaluation_error, format_table, load_estimator,
                               protocol_report, write_report)
from training.metrics import (DEPTH_METRICS, HIGHER_IS_BETTER, DepthEvalProtocol,
                              MetricAverager, depth_metrics, psnr, ssim)
from training.models.nir_translation import NIR_KEYS, sample_nir

DEPTH_INPUTS = ('rgb', 'nir_translated', 'nir_gray')
TRANSLATIONS = ('ctn', 'gray_nir')


def translation_metrics(pseudo_rgb: np.ndarray, nir: np.ndarray, rgb: np.ndarray
                        ) -> dict[str, dict[str, float]]:
    """PSNR / SSIM of the pseudo-RGB and of the gray NIR (as RGB) against the true RGB, all
    at the pseudo-RGB's size (8-bit images)."""
    height, width = pseudo_rgb.shape[:2]
    reference = resize_image(rgb, height, width)
    gray = resize_image(nir, height, width).reshape(height, width)
    if gray.dtype == np.uint16:
        gray = (gray >> 8).astype(np.uint8)
    gray_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    return {name: {'psnr': psnr(image, reference, 255.0), 'ssim': ssim(image, reference, 255.0)}
            for name, image in (('ctn', pseudo_rgb), ('gray_nir', gray_rgb))}


def recovered_gap(depth: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Per metric: the fraction of the gray-NIR -> RGB gap the translation closes."""
    out = {}
    for metric in DEPTH_METRICS:
        if not all(metric in depth[name] for name in DEPTH_INPUTS):
            continue
        gap = depth['rgb'][metric] - depth['nir_gray'][metric]
        if gap != 0:
            out[metric] = (depth['nir_translated'][metric] - depth['nir_gray'][metric]) / gap
    return out


def evaluate_translation(nir_estimator: NirDepthEstimator, dataset: Sequence,
                         protocol: DepthEvalProtocol, nir_key: str = 'nir', limit: int = 0,
                         progress: bool = True) -> dict[str, Any]:
    """Translation and depth metrics (module docstring), averaged over the images."""
    from tqdm import tqdm
    if not nir_estimator.two_stage:
        raise ValueError('the evaluation needs a translation model and a depth model')
    rgb_estimator = nir_estimator.depth_stage
    count = len(dataset) if limit <= 0 else min(limit, len(dataset))
    translation = {name: MetricAverager() for name in TRANSLATIONS}
    depth = {name: MetricAverager() for name in DEPTH_INPUTS}
    for index in tqdm(range(count), disable=not progress, unit='image'):
        sample = dataset[index]
        for key in (nir_key, 'rgb', 'depth'):
            if sample.get(key) is None:
                raise KeyError(f"sample '{sample.get('name', index)}' has no '{key}', which "
                               'the evaluation needs (registered NIR, RGB and depth)')
        nir, encoding = sample_nir(sample, nir_key)
        camera = sample.get('camera')
        translated = nir_estimator.estimate(nir, encoding, camera,
                                            depth_range=EVALUATION_RANGE)
        for name, values in translation_metrics(translated.extras['pseudo_rgb'], nir,
                                                sample['rgb']).items():
            translation[name].add(values)
        predictions = {
            'rgb': rgb_estimator.estimate(sample['rgb'], 'rgb8', camera,
                                          depth_range=EVALUATION_RANGE).depth,
            'nir_translated': translated.depth,
            'nir_gray': rgb_estimator.estimate(nir, encoding, camera,
                                               depth_range=EVALUATION_RANGE).depth}
        try:
            metrics = {name: depth_metrics(pred, sample['depth'], protocol)
                       for name, pred in predictions.items()}
        except ValueError as exc:
            if 'ground-truth' not in str(exc):
                raise
            continue          # no valid ground truth in this image under the protocol
        for name, values in metrics.items():
            depth[name].add(values)
    depth_means = {name: {**a.means(), 'images': a.images} for name, a in depth.items()}
    return {'translation': {name: {**a.means(), 'images': a.images}
                            for name, a in translation.items()},
            'depth': depth_means, 'recovered_gap': recovered_gap(depth_means)}


def format_report(results: Mapping[str, Any]) -> str:
    lines = [f"{'translation':<14}{'psnr (dB)':>11}{'ssim':>11}"]
    for name, values in results['translation'].items():
        lines.append(f"{name:<14}{values['psnr']:>11.3f}{values['ssim']:>11.4f}")
    lines += ['', format_table(results['depth']), '',
              'gray-NIR -> RGB gap recovered by the translation: ' + ', '.join(
                  f'{k} {v:.1%}' for k, v in results['recovered_gap'].items()
                  if k in ('abs_rel', 'rmse', 'delta1'))]
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.evaluate_nir_translation',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--translation', required=True,
                        help='NIR -> RGB translation model (.onnx / .pt2 / name)')
    parser.add_argument('--depth-model', required=True,
                        help='RGB depth model (.onnx / .pt2 / name, or a training checkpoint '
                             '.pt run in PyTorch)')
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--dataset', default='synthetic')
    add_split_arguments(parser)
    parser.add_argument('--nir-key', default='nir', choices=NIR_KEYS)
    parser.add_argument('--max-depth', type=float, help='ground-truth cap (metres)')
    add_report_arguments(parser)
    args = parser.parse_args(argv)

    from training.datasets import build_dataset
    try:
        options = _parse_options(args.dataset_option)
        protocol = DATASET_PROTOCOLS.get(args.dataset, DepthEvalProtocol())
        if args.max_depth is not None:
            protocol = dataclasses.replace(protocol, max_depth=args.max_depth)
        engine = EngineOptions(intra_op_threads=1)
        estimator = NirDepthEstimator(open_model(args.translation, args.backend, engine),
                                      load_estimator(args.depth_model, args.backend).model)
        dataset = build_dataset(args.dataset, args.split, args.root, **options)
        results = evaluate_translation(estimator, dataset, protocol, args.nir_key, args.limit,
                                       not args.no_progress)
    except EVALUATION_ERRORS as exc:
        return evaluation_error(exc)
    images = results['depth']['rgb']['images']
    print(f'{args.dataset}/{args.split}: {images} images; translation '
          f'{args.translation}, depth model {args.depth_model}')
    print(format_report(results))
    if args.output:
        report = {'translation_model': args.translation, 'depth_model': args.depth_model,
                  'dataset': args.dataset, 'split': args.split, 'dataset_options': options,
                  'protocol': protocol_report(protocol),
                  'higher_is_better': sorted(HIGHER_IS_BETTER), **results}
        write_report(args.output, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
