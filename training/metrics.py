"""Evaluation metrics of the five papers, as plain numpy functions.

Depth maps are float arrays in metres with NaN (or <= 0) where the ground truth is unknown.
Every depth metric is computed per image over the pixels that are valid in the ground truth
*and* finite in the prediction, then averaged over images (``MetricAverager``), which is the
protocol of Eigen et al. and of the KITTI papers that followed them.

Definitions (p = predicted depth, g = ground truth, over the N evaluated pixels):

- abs_rel  = mean(|p - g| / g)
- sq_rel   = mean((p - g)^2 / g)
- rmse     = sqrt(mean((p - g)^2))                          metres
- rmse_log = sqrt(mean((ln p - ln g)^2))
- rmse_log_si = sqrt(D), D the scale-invariant error of Eigen et al. eq. 3 (see below)
- delta1/2/3 = fraction of pixels with max(p / g, g / p) < 1.25, 1.25^2, 1.25^3
- mape     = 100 * mean(|p - g| / g)                        percent (Makarov et al.)
- epe      = mean(|d_p - d_g|)                              disparity pixels
- bad_N    = 100 * fraction of pixels with |d_p - d_g| > N  percent
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

DEPTH_METRICS = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'rmse_log_si',
                 'delta1', 'delta2', 'delta3')
# Metrics where larger is better (for tables and comparisons).
HIGHER_IS_BETTER = frozenset({'delta1', 'delta2', 'delta3', 'psnr', 'ssim'})

# Evaluation crops as fractions of the image: (top, bottom, left, right).
# eigen_nyu: rows 45..471 and columns 41..601 of the 480x640 NYU Depth v2 frame (the region
# where the Kinect depth is registered to the RGB image), as in Eigen et al.'s evaluation.
# garg: Garg et al. (ECCV 2016) crop of KITTI; eigen_kitti: Eigen et al.'s KITTI crop.
CROPS: dict[str, tuple[float, float, float, float]] = {
    'eigen_nyu': (45 / 480, 471 / 480, 41 / 640, 601 / 640),
    'garg': (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    'eigen_kitti': (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


@dataclass(frozen=True)
class DepthEvalProtocol:
    """How predictions are compared with ground truth.

    Ground truth outside [min_depth, max_depth] is not evaluated (``max_depth`` = 80 is the
    KITTI cap); predictions are clamped into the same range after optional per-image median
    scaling (p *= median(g) / median(p)), the usual treatment of models of unknown scale.
    """
    min_depth: float = 1e-3
    max_depth: float = math.inf
    crop: str = 'none'
    median_scaling: bool = False

    def __post_init__(self) -> None:
        if self.crop != 'none' and self.crop not in CROPS:
            raise ValueError(f"crop '{self.crop}' not in {['none', *CROPS]}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < max_depth, got {self.min_depth}, '
                             f'{self.max_depth}')


NYU_PROTOCOL = DepthEvalProtocol(min_depth=1e-3, max_depth=10.0, crop='eigen_nyu')
KITTI_PROTOCOL = DepthEvalProtocol(min_depth=1e-3, max_depth=80.0, crop='garg')


def crop_mask(height: int, width: int, crop: str) -> np.ndarray:
    """Boolean (height, width) mask of an evaluation crop ('none' = whole image)."""
    mask = np.zeros((height, width), dtype=bool)
    if crop == 'none':
        mask[:] = True
        return mask
    try:
        top, bottom, left, right = CROPS[crop]
    except KeyError:
        raise ValueError(f"crop '{crop}' not in {['none', *CROPS]}") from None
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def ground_truth_mask(gt: np.ndarray, protocol: DepthEvalProtocol) -> np.ndarray:
    """Pixels the protocol evaluates: finite ground truth inside the range and the crop."""
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(gt) & (gt > protocol.min_depth) & (gt <= protocol.max_depth)
    return valid & crop_mask(gt.shape[0], gt.shape[1], protocol.crop)


def depth_metrics(pred: np.ndarray, gt: np.ndarray,
                  protocol: DepthEvalProtocol = DepthEvalProtocol()) -> dict[str, float]:
    """All depth metrics of one image (see module docstring), plus bookkeeping.

    ``pred`` and ``gt`` are (H, W) metres of the same shape. Returned extras: ``coverage``
    (fraction of evaluated ground-truth pixels with a finite positive prediction; the rest
    are excluded from the errors, so a model cannot hide its failures silently) and
    ``median_scale`` when median scaling is on. Raises ValueError when nothing is valid.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    gt_valid = ground_truth_mask(gt, protocol)
    n_gt = int(gt_valid.sum())
    if n_gt == 0:
        raise ValueError('no valid ground-truth pixel to evaluate')
    with np.errstate(invalid='ignore'):
        evaluated = gt_valid & np.isfinite(pred) & (pred > 0)
    if not evaluated.any():
        raise ValueError('the prediction has no finite positive value on valid ground truth')
    p, g = pred[evaluated], gt[evaluated]
    result = {}
    if protocol.median_scaling:
        scale = float(np.median(g) / np.median(p))
        p = p * scale
        result['median_scale'] = scale
    p = np.clip(p, protocol.min_depth, protocol.max_depth)
    result.update(_errors(p, g))
    result['coverage'] = float(evaluated.sum()) / n_gt
    return result


def _errors(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    ratio = np.maximum(p / g, g / p)
    log_diff = np.log(p) - np.log(g)
    return {
        'abs_rel': float(np.mean(np.abs(p - g) / g)),
        'sq_rel': float(np.mean((p - g) ** 2 / g)),
        'rmse': float(np.sqrt(np.mean((p - g) ** 2))),
        'rmse_log': float(np.sqrt(np.mean(log_diff ** 2))),
        'rmse_log_si': float(np.sqrt(max(_scale_invariant(log_diff), 0.0))),
        'delta1': float(np.mean(ratio < 1.25)),
        'delta2': float(np.mean(ratio < 1.25 ** 2)),
        'delta3': float(np.mean(ratio < 1.25 ** 3)),
    }


def _scale_invariant(d: np.ndarray) -> float:
    # Eigen et al. eq. 3: D(y, y*) = 1/n sum_i d_i^2 - 1/n^2 (sum_i d_i)^2,
    # d_i = ln y_i - ln y*_i. Equal to eq. 2, the mean over all pixel pairs (i, j) of the
    # squared difference of log-depth differences, and to eq. 1 with the optimal scale
    # alpha = mean(ln y* - ln y) removed: multiplying y by any constant leaves it unchanged.
    n = d.size
    return float(np.sum(d ** 2) / n - np.sum(d) ** 2 / n ** 2)


def scale_invariant_log_error(pred: np.ndarray, gt: np.ndarray) -> float:
    """Eigen et al.'s scale-invariant error D (eq. 3) over pixels valid in both (> 0, finite)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(pred) & np.isfinite(gt) & (pred > 0) & (gt > 0)
    if not valid.any():
        raise ValueError('no pixel with a valid prediction and ground truth')
    return _scale_invariant(np.log(pred[valid]) - np.log(gt[valid]))


def mape(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute percentage error (percent) over pixels valid in both (Makarov et al.)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(pred) & np.isfinite(gt) & (gt > 0)
    if not valid.any():
        raise ValueError('no pixel with a valid prediction and ground truth')
    return float(100.0 * np.mean(np.abs(pred[valid] - gt[valid]) / gt[valid]))


def disparity_metrics(pred: np.ndarray, gt: np.ndarray,
                      thresholds: Iterable[float] = (1, 2, 3)) -> dict[str, float]:
    """End-point error (pixels) and bad-N (percent of pixels off by more than N pixels).

    Evaluated where the ground-truth disparity is finite and positive; a non-finite
    prediction there counts as wrong by an infinite amount (bad for every N, excluded from
    EPE) and lowers ``coverage``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(gt) & (gt > 0)
    if not valid.any():
        raise ValueError('no valid ground-truth disparity')
    error = np.abs(pred[valid] - gt[valid])
    finite = np.isfinite(error)
    if not finite.any():
        raise ValueError('the prediction has no finite value on valid ground truth')
    result = {'epe': float(np.mean(error[finite])), 'coverage': float(finite.mean())}
    error = np.where(finite, error, np.inf)
    for n in thresholds:
        result[f'bad_{n:g}'] = float(100.0 * np.mean(error > n))
    return result


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE).

    ``data_range`` is stated by the caller (255 for 8-bit images, 1 for unit floats), never
    guessed from the data. As reported in the CycleGAN papers' tables.
    """
    from skimage.metrics import peak_signal_noise_ratio
    image, reference = _same_shape(image, reference)
    return float(peak_signal_noise_ratio(reference, image, data_range=data_range))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Structural similarity (Wang et al. 2004; scikit-image, 7x7 uniform window).

    (H, W) or (H, W, C) images; colour SSIM is the mean over channels.
    """
    from skimage.metrics import structural_similarity
    image, reference = _same_shape(image, reference)
    channel_axis = -1 if image.ndim == 3 else None
    return float(structural_similarity(reference, image, data_range=data_range,
                                       channel_axis=channel_axis))


def _same_shape(image, reference) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if image.shape != reference.shape:
        raise ValueError(f'image {image.shape} and reference {reference.shape} differ in shape')
    return image, reference


class MetricAverager:
    """Mean of per-image metric dicts (each key averaged over the images that report it)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.images = 0

    def add(self, metrics: Mapping[str, float]) -> None:
        self.images += 1
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self._sums[k] / self._counts[k] for k in self._sums}
