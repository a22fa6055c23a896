"""Classical densification of semi-dense / sparse depth: the baselines of Makarov et al.'s
tables, and the semi-dense evaluation protocol (input masks, the paper's metrics).

Baselines (metres in, metres out; NaN = unknown):

- ``nearest``: each pixel takes the depth of the nearest known pixel (SciPy's Euclidean
  distance transform, exact).
- ``linear``: piecewise-linear interpolation over the Delaunay triangulation of the known
  pixels (scipy.interpolate.LinearNDInterpolator); outside their convex hull, nearest.
- ``log_linear``: the same piecewise-linear interpolation in log depth, outside the hull the
  nearest interpolated pixel (depth_nodes.core.semidense.linear_fill): the shipped model's
  fill far from the samples.
- ``neighbourhood``: the nearest fill averaged (in log depth) over a square as large as each
  pixel's distance to the nearest sample (depth_nodes.core.semidense.neighbourhood_fill, a
  gather form of discrete Sibson interpolation): the shipped model's fill near the samples.
- ``blend``: the neighbourhood fill near the samples, the linear fill in log depth
  (depth_nodes.core.semidense.linear_fill) far from them, in log depth, with the
  fixed distance weight the 6-channel network starts from (training.networks.semidense_net).
- ``inpaint``: OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001) of the unknown
  pixels, on float32 depth. (Telea's method, OpenCV's other one, extrapolates the boundary
  gradient and overshoots far outside the known depths on inputs this sparse.)

The paper's metrics on [0, 1]-normalised depth: both maps are divided by the largest
evaluated ground-truth depth of the image, then RMSE and PSNR = 10 log10(1 / MSE) (peak 1)
are computed over the evaluated pixels; MAPE (percent) is the same in metres or normalised.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from depth_nodes.core.semidense import linear_fill as log_linear_fill
from depth_nodes.core.semidense import (blend_weight, known_depth,
                                        nearest_fill_with_distance,
                                        neighbourhood_fill, random_sample_mask,
                                        semidense_mask_from_gradient)
from training.metrics import DepthEvalProtocol, depth_metrics, ground_truth_mask, mape

BASELINES = ('nearest', 'linear', 'inpaint', 'log_linear', 'neighbourhood', 'blend')
MASK_PROTOCOLS = ('gradient', 'random', 'sample')
INPAINT_RADIUS = 5   # pixels; the neighbourhood of each inpainted pixel


def _require_known(depth: np.ndarray) -> np.ndarray:
    known = known_depth(depth)
    if not known.any():
        raise ValueError('the sparse depth has no known pixel to interpolate from')
    return known


def nearest_fill(depth: np.ndarray) -> np.ndarray:
    """Every pixel takes the depth of the nearest known pixel (Euclidean)."""
    from scipy import ndimage
    known = _require_known(depth)
    _, (rows, cols) = ndimage.distance_transform_edt(~known, return_indices=True)
    return depth[rows, cols].astype(np.float32)


def linear_fill(depth: np.ndarray) -> np.ndarray:
    """Barycentric interpolation in the Delaunay triangles of the known pixels; pixels
    outside their convex hull take the nearest known depth."""
    from scipy.interpolate import LinearNDInterpolator
    known = _require_known(depth)
    v, u = np.nonzero(known)
    if v.size < 3:
        return nearest_fill(depth)
    grid_v, grid_u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    try:
        interpolate = LinearNDInterpolator(np.column_stack([v, u]), depth[v, u])
        out = interpolate(grid_v, grid_u).astype(np.float32)
    except Exception:   # collinear samples: qhull cannot triangulate (scipy raises QhullError)
        return nearest_fill(depth)
    outside = ~np.isfinite(out)
    if outside.any():
        out[outside] = nearest_fill(depth)[outside]
    return out


def inpaint_fill(depth: np.ndarray, radius: int = INPAINT_RADIUS) -> np.ndarray:
    """OpenCV inpainting (Navier-Stokes) of the unknown pixels of a float32 depth map."""
    known = _require_known(depth)
    source = np.where(known, depth, 0).astype(np.float32)
    return cv2.inpaint(source, (~known).astype(np.uint8), radius, cv2.INPAINT_NS)


def neighbourhood_depth_fill(depth: np.ndarray) -> np.ndarray:
    """depth_nodes.core.semidense.neighbourhood_fill of the sparse depth; known pixels kept."""
    known = _require_known(depth)
    nearest, distance = nearest_fill_with_distance(depth)
    return np.where(known, depth, neighbourhood_fill(nearest, distance)).astype(np.float32)


def blend_fill(depth: np.ndarray) -> np.ndarray:
    """log d = (1 - a) log nb + a log cl, a = sigmoid((distance - centre) / width): the
    neighbourhood fill nb near the samples, the log-linear fill cl far from them."""
    known = _require_known(depth)
    nearest, distance = nearest_fill_with_distance(depth)
    near = np.log(neighbourhood_fill(nearest, distance))
    far = np.log(log_linear_fill(depth))
    a = blend_weight(distance)
    return np.where(known, depth, np.exp(near + a * (far - near))).astype(np.float32)


FILLS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'nearest': nearest_fill, 'linear': linear_fill, 'inpaint': inpaint_fill,
    'log_linear': log_linear_fill, 'neighbourhood': neighbourhood_depth_fill,
    'blend': blend_fill}


# --- evaluation protocol -----------------------------------------------------------------------

class SemiDenseInputs:
    """A dataset whose samples also carry ``semidense_depth`` (metres, NaN unknown): the
    ground truth at the pixels of a deterministic mask, so the model and every baseline see
    the same input.

    ``mask``: 'gradient' (LSD-SLAM-like, ``density`` of the pixels), 'random' (uniform
    samples, LiDAR-like) or 'sample' (the dataset's own ``semidense_mask``). Sample i's mask
    is drawn from a generator seeded with (seed, i).
    """

    def __init__(self, dataset: Sequence, mask: str = 'gradient', density: float = 0.1,
                 seed: int = 0):
        if mask not in MASK_PROTOCOLS:
            raise ValueError(f"semidense mask '{mask}' not in {MASK_PROTOCOLS}")
        self.dataset, self.mask, self.density, self.seed = dataset, mask, density, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        depth = np.asarray(sample['depth'], dtype=np.float32)
        known = known_depth(depth)
        if self.mask == 'sample':
            if sample.get('semidense_mask') is None:
                raise KeyError(f"sample '{sample.get('name', index)}' has no semidense_mask")
            mask = sample['semidense_mask']
        elif self.mask == 'gradient':
            gray = cv2.cvtColor(np.ascontiguousarray(sample['rgb']), cv2.COLOR_RGB2GRAY)
            mask = semidense_mask_from_gradient(gray, self.density)
        else:
            rng = np.random.default_rng([self.seed, index])
            mask = random_sample_mask(depth.shape, self.density, rng)
        sample['semidense_depth'] = np.where(mask & known, depth, np.float32(np.nan))
        sample['semidense_density'] = float((mask & known).mean())
        return sample


def fill_predictor(name: str) -> Callable[[Mapping[str, Any]], np.ndarray]:
    fill = FILLS[name]

    def predict(sample: Mapping[str, Any]) -> np.ndarray:
        return fill(sample['semidense_depth'])
    return predict


def semidense_model_predictor(estimator, depth_range: tuple[float, float]
                              ) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """A SemiDenseEstimator as a predictor of SemiDenseInputs samples, run as the node runs
    it (known input depths kept, as the baselines keep them too)."""
    def predict(sample: Mapping[str, Any]) -> np.ndarray:
        intensity = None
        if estimator.needs_intensity:
            intensity = cv2.cvtColor(np.ascontiguousarray(sample['rgb']), cv2.COLOR_RGB2GRAY)
        return estimator.estimate(sample['semidense_depth'], intensity=intensity,
                                  depth_range=depth_range, keep_input_depth=True).depth
    return predict


def interpolation_metrics(pred: np.ndarray, gt: np.ndarray,
                          protocol: DepthEvalProtocol = DepthEvalProtocol()
                          ) -> dict[str, float]:
    """depth_metrics plus the paper's MAPE (%), RMSE and PSNR (dB) on [0, 1]-normalised
    depth (both divided by the largest evaluated ground-truth depth of the image)."""
    result = depth_metrics(pred, gt, protocol)
    evaluated = ground_truth_mask(gt, protocol) & np.isfinite(pred)
    peak = float(np.max(gt[evaluated]))
    p = np.asarray(pred, np.float64)[evaluated] / peak
    g = np.asarray(gt, np.float64)[evaluated] / peak
    mse = float(np.mean((p - g) ** 2))
    result['mape'] = mape(pred[evaluated], gt[evaluated])
    result['rmse_norm'] = math.sqrt(mse)
    result['psnr'] = 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf
    return result
