"""Which pixels a semi-dense SLAM reconstructs, and LiDAR-like uniform sampling.

Semi-dense visual SLAM (LSD-SLAM) estimates depth only where the image has enough intensity
gradient for a stereo match along the epipolar line; Makarov et al. (semi-dense depth
interpolation) simulate its output on RGB-D data by keeping pixels whose gradient magnitude
passes an adaptive threshold, which gives 10-15 % of the pixels on typical indoor images.
The training data and the semidense node both use this function, so the network is trained
on the sparsity pattern it sees at run time.
"""
from __future__ import annotations

import cv2
import numpy as np

# Gradients below this (Sobel magnitude of a 0..255 image, i.e. ~8 x grey levels per pixel)
# are sensor noise on a flat surface: SLAM has no texture to match there, whatever the
# target density asks for.
MIN_GRADIENT = 24.0
# Side of the square window, in pixels, over which the local gradient energy is averaged.
LOCAL_WINDOW = 15


def gradient_magnitude(gray_uint8: np.ndarray) -> np.ndarray:
    """|grad I| with 3x3 Sobel on a lightly smoothed (H, W) uint8 image, float32."""
    if gray_uint8.ndim != 2:
        raise ValueError(f'expected an (H, W) grey image, got shape {gray_uint8.shape}')
    gray = cv2.GaussianBlur(gray_uint8.astype(np.float32), (3, 3), 0.8)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def semidense_mask_from_gradient(gray_uint8: np.ndarray, target_density: float = 0.125,
                                 min_gradient: float = MIN_GRADIENT,
                                 window: int = LOCAL_WINDOW) -> np.ndarray:
    """(H, W) bool mask of the pixels a semi-dense SLAM would give depth for.

    Adaptive threshold: each pixel's gradient g is compared with the mean gradient of its
    neighbourhood (plus the image mean, so that a weakly textured region is not promoted
    just because its neighbours are flat too):

        score = g / (mean_window(g) + mean_image(g)),   keep score >= tau

    tau is the (1 - target_density) quantile of the scores, so the mask holds
    ``target_density`` of the pixels; pixels with g < ``min_gradient`` are never kept, so
    an image without texture gives fewer (as LSD-SLAM would).
    """
    if not 0.0 < target_density < 1.0:
        raise ValueError(f'target_density must be in (0, 1), got {target_density}')
    if gray_uint8.dtype != np.uint8:
        raise ValueError(f'expected a uint8 grey image, got {gray_uint8.dtype}')
    grad = gradient_magnitude(gray_uint8)
    local = cv2.boxFilter(grad, -1, (window, window), borderType=cv2.BORDER_REFLECT)
    score = grad / (local + np.float32(grad.mean() + 1e-6))
    score[grad < min_gradient] = 0.0
    flat = score.ravel()
    keep = int(round(target_density * flat.size))
    if keep == 0:
        return np.zeros(gray_uint8.shape, dtype=bool)
    # The keep-th largest score; np.partition is O(N), a full sort is not needed.
    tau = np.partition(flat, flat.size - keep)[flat.size - keep]
    if tau <= 0.0:   # fewer textured pixels than asked for: keep all of them
        return score > 0.0
    return score >= tau


def random_sample_mask(shape: tuple[int, int], density: float,
                       rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool mask with exactly round(density * H * W) pixels drawn uniformly.

    The sparse-depth protocol of LiDAR-like inputs (e.g. Ma & Karaman's sparse-to-dense):
    depth samples spread uniformly over the image, independent of its content.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f'density must be in [0, 1], got {density}')
    size = int(shape[0]) * int(shape[1])
    mask = np.zeros(size, dtype=bool)
    mask[rng.choice(size, size=int(round(density * size)), replace=False)] = True
    return mask.reshape(shape)
