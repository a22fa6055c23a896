"""Metric scale for a depth network from sparse metric depth of the same frame.

Monocular networks order depth well but get its scale wrong; a relative inverse-depth network
(MiDaS- or Depth-Anything-style exports) gives no scale at all. A robot often has sparse metric
depth of the same view: an LSD-SLAM semi-dense map, a LiDAR cloud projected into the camera, or
SGBM on a stereo pair. Two fits, both robust to wrong sparse points (moving objects, LiDAR
returns seen through the image edge, stereo mismatches):

- ``fit_depth_scale``: depth_metric = s * depth_pred, for models whose output is depth up to a
  scale. s = exp(median(log z - log d)) over the sparse points (scale-invariant in log space,
  Eigen et al.), then the mean log ratio over the points within ``inlier_log_error`` of it.
- ``fit_inverse_depth_affine``: 1 / depth_metric = s * pred + t, for relative inverse-depth
  outputs (Ranftl et al., MiDaS, eq. 4: scale and shift are fitted per image). RANSAC over
  point pairs, then least squares on the inliers (relative error below ``inlier_rel_error``).

No ROS here: mono_depth_node (scale_from) runs :class:`SparseDepthScaler` per frame, which fits
or falls back on the last fit held by :class:`ScaleHold`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIT_KINDS = ('depth_scale', 'inverse_depth_affine')


class ScaleFitError(ValueError):
    """Too few or degenerate sparse points for a fit."""


@dataclass(frozen=True)
class ScaleFit:
    kind: str            # one of FIT_KINDS
    scale: float
    shift: float         # 0 for depth_scale
    residual: float      # median |relative depth error| over the inliers
    inliers: int
    points: int          # sparse points offered to the fit

    def apply(self, prediction: np.ndarray) -> np.ndarray:
        """Metric depth (float32 metres) from the model's prediction; NaN where the fitted
        inverse depth is not positive."""
        pred = prediction.astype(np.float32, copy=False)
        if self.kind == 'depth_scale':
            return pred * np.float32(self.scale)
        inverse = pred * np.float32(self.scale) + np.float32(self.shift)
        with np.errstate(divide='ignore', invalid='ignore'):
            return np.where(inverse > 0, 1.0 / inverse, np.nan).astype(np.float32)


def _sparse_pairs(prediction: np.ndarray, sparse_depth: np.ndarray,
                  min_points: int) -> tuple[np.ndarray, np.ndarray]:
    if prediction.shape != sparse_depth.shape:
        raise ScaleFitError(f'prediction {prediction.shape} and sparse depth '
                            f'{sparse_depth.shape} differ in size')
    pred = prediction.astype(np.float64).ravel()
    sparse = sparse_depth.astype(np.float64).ravel()
    valid = np.isfinite(pred) & np.isfinite(sparse) & (sparse > 0)
    if valid.sum() < min_points:
        raise ScaleFitError(f'{int(valid.sum())} valid sparse points, need {min_points}')
    return pred[valid], sparse[valid]


def fit_depth_scale(prediction: np.ndarray, sparse_depth: np.ndarray, *,
                    inlier_log_error: float = 0.15, min_points: int = 20) -> ScaleFit:
    """Robust per-frame scale s with ``sparse ≈ s * prediction`` (both in metres-like units;
    sparse_depth is 0 or NaN where unknown)."""
    pred, sparse = _sparse_pairs(prediction, sparse_depth, min_points)
    positive = pred > 0
    pred, sparse = pred[positive], sparse[positive]
    if pred.size < min_points:
        raise ScaleFitError(f'{pred.size} sparse points with a positive prediction, '
                            f'need {min_points}')
    log_ratio = np.log(sparse) - np.log(pred)
    centre = np.median(log_ratio)
    inliers = np.abs(log_ratio - centre) <= inlier_log_error
    log_scale = float(log_ratio[inliers].mean())
    scale = float(np.exp(log_scale))
    relative = np.abs(scale * pred[inliers] - sparse[inliers]) / sparse[inliers]
    return ScaleFit('depth_scale', scale, 0.0, float(np.median(relative)),
                    int(inliers.sum()), int(pred.size))


def fit_inverse_depth_affine(prediction: np.ndarray, sparse_depth: np.ndarray, *,
                             inlier_rel_error: float = 0.05, iterations: int = 100,
                             min_points: int = 20, max_hypothesis_points: int = 4000,
                             seed: int = 0) -> ScaleFit:
    """Robust (s, t) with ``1 / sparse ≈ s * prediction + t`` (relative inverse depth).

    RANSAC: each hypothesis is the line through two random sparse points, scored by how many
    points it explains within ``inlier_rel_error`` (relative error of the inverse depth, the
    same as that of depth to first order); the best is refitted by least squares on its
    inliers, twice. The random generator is seeded: the same frame gives the same fit.
    """
    pred, sparse = _sparse_pairs(prediction, sparse_depth, min_points)
    target = 1.0 / sparse
    rng = np.random.default_rng(seed)
    if pred.size > max_hypothesis_points:     # scoring subset; the refit uses every point
        pick = rng.choice(pred.size, max_hypothesis_points, replace=False)
        x_h, y_h = pred[pick], target[pick]
    else:
        x_h, y_h = pred, target
    i, j = rng.integers(0, x_h.size, (2, iterations))
    dx = x_h[i] - x_h[j]
    usable = np.abs(dx) > 1e-12 * (np.abs(x_h[i]) + np.abs(x_h[j]) + 1e-30)
    if not usable.any():
        raise ScaleFitError('the prediction is constant over the sparse points')
    s = (y_h[i] - y_h[j])[usable] / dx[usable]
    t = y_h[i][usable] - s * x_h[i][usable]
    errors = np.abs(s[:, None] * x_h[None, :] + t[:, None] - y_h[None, :]) / y_h[None, :]
    best = int(np.argmax((errors <= inlier_rel_error).sum(axis=1)))
    scale, shift = float(s[best]), float(t[best])
    for _ in range(2):
        inliers = np.abs(scale * pred + shift - target) / target <= inlier_rel_error
        if inliers.sum() < 2:
            raise ScaleFitError('no consistent scale and shift: fewer than 2 inliers')
        design = np.stack([pred[inliers], np.ones(int(inliers.sum()))], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, target[inliers], rcond=None)
        scale, shift = float(scale), float(shift)
    inliers = np.abs(scale * pred + shift - target) / target <= inlier_rel_error
    fitted = scale * pred[inliers] + shift
    relative = np.abs(1.0 / fitted - sparse[inliers]) / sparse[inliers]
    return ScaleFit('inverse_depth_affine', scale, shift,
                    float(np.median(relative)) if relative.size else float('nan'),
                    int(inliers.sum()), int(pred.size))


class ScaleHold:
    """The newest fit, used for frames without sparse depth for up to ``hold_s`` seconds of
    input time; after that, ``current()`` returns None and the node warns."""

    def __init__(self, hold_s: float):
        self.hold_s = float(hold_s)
        self._fit: ScaleFit | None = None
        self._stamp_s = 0.0

    def update(self, fit: ScaleFit, stamp_s: float) -> None:
        self._fit, self._stamp_s = fit, float(stamp_s)

    def current(self, stamp_s: float) -> ScaleFit | None:
        if self._fit is None:
            return None
        age = float(stamp_s) - self._stamp_s
        if age < 0:        # time went back (bag loop): the old fit is from another pass
            self.reset()
            return None
        return self._fit if age <= self.hold_s else None

    def age(self, stamp_s: float) -> float:
        return float(stamp_s) - self._stamp_s if self._fit is not None else float('inf')

    def reset(self) -> None:
        self._fit = None


@dataclass(frozen=True)
class ScaleFitOptions:
    hold_s: float = 1.0           # seconds of input time a fit is used for frames without one
    inlier_error: float = 0.1     # relative depth error of an inlier sparse point
    min_points: int = 20          # fewer valid sparse points: no fit for this frame


class SparseDepthScaler:
    """Per frame: fit the model's prediction to the frame's sparse metric depth, or use the
    held fit of an earlier frame; None when there is neither (the caller drops the frame).

    ``kind`` (FIT_KINDS) follows the model output: a depth up to scale (fit_depth_scale), or
    a relative inverse depth (fit_inverse_depth_affine). Counts what happened to the frames
    and keeps the last fit for the node's diagnostics.
    """

    def __init__(self, kind: str):
        if kind not in FIT_KINDS:
            raise ValueError(f"scale fit kind '{kind}' not in {FIT_KINDS}")
        self.kind = kind
        self.hold = ScaleHold(0.0)
        self.last_fit: ScaleFit | None = None
        self.last_error = ''          # why the last frame with sparse depth got no fit
        self.fitted = self.held = self.unscaled = 0

    def fit(self, prediction: np.ndarray, sparse_depth: np.ndarray,
            options: ScaleFitOptions = ScaleFitOptions()) -> ScaleFit:
        """This frame's fit (ScaleFitError: too few or inconsistent points). A relative
        depth error e is a log error of log(1 + e) for the depth scale."""
        if self.kind == 'depth_scale':
            return fit_depth_scale(prediction, sparse_depth, min_points=options.min_points,
                                   inlier_log_error=float(np.log1p(options.inlier_error)))
        return fit_inverse_depth_affine(prediction, sparse_depth,
                                        inlier_rel_error=options.inlier_error,
                                        min_points=options.min_points)

    def learn(self, prediction: np.ndarray, sparse_depth: np.ndarray, stamp_s: float,
              options: ScaleFitOptions = ScaleFitOptions()) -> ScaleFit | None:
        """Fit the frame at ``stamp_s`` and hold the fit from then on, unless a newer one is
        held (sparse depth that came after its image); None (last_error says why) when the
        points allow no fit."""
        try:
            fit = self.fit(prediction, sparse_depth, options)
        except ScaleFitError as exc:
            self.last_error = str(exc)
            return None
        if self.hold.age(stamp_s) >= 0:
            self.hold.update(fit, stamp_s)
        self.last_fit, self.last_error = fit, ''
        return fit

    def scale(self, prediction: np.ndarray, sparse_depth: np.ndarray | None, stamp_s: float,
              options: ScaleFitOptions = ScaleFitOptions()) -> ScaleFit | None:
        """The fit for the frame at ``stamp_s`` (seconds of input time): its own when
        ``sparse_depth`` (same size as ``prediction``; NaN or 0 unknown) allows one, else the
        held one while it is at most ``options.hold_s`` old, else None."""
        self.hold.hold_s = options.hold_s
        if sparse_depth is not None:
            fit = self.learn(prediction, sparse_depth, stamp_s, options)
            if fit is not None:
                self.hold.update(fit, stamp_s)     # the newest frame's, even after a loop
                self.fitted += 1
                return fit
        fit = self.hold.current(stamp_s)
        if fit is None:
            self.unscaled += 1
        else:
            self.held += 1
        return fit
