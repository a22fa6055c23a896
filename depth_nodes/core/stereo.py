"""Stereo pairs without ROS: the classical matcher, the rig geometry and the "pp" mirror
post-processing of stereo-trained networks.

Conventions (as sensor_msgs/CameraInfo and stereo_image_proc): a rectified pair, left
camera P[0, 3] = 0, right camera P[0, 3] = Tx = -fx B; a point at left column x_l is at right
column x_r = x_l - d. When the principal points differ (cx_r != cx_l, Middlebury's doffs),
depth Z = fx B / (d + cx_r - cx_l).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, CameraModelError, disparity_to_depth
from depth_nodes.core.encodings import ImageFormatError, lookup_encoding

SGBM_MODES = {
    'sgbm': cv2.STEREO_SGBM_MODE_SGBM,            # 5 directions
    'hh': cv2.STEREO_SGBM_MODE_HH,                # full 8 directions (more memory)
    'sgbm_3way': cv2.STEREO_SGBM_MODE_SGBM_3WAY,  # faster, 3 directions per pass
    'hh4': cv2.STEREO_SGBM_MODE_HH4,
}
# StereoSGBM returns fixed-point disparities with 4 fractional bits.
SGBM_DISPARITY_SCALE = 16
# Largest search range chosen automatically: SGBM's time and memory grow with it.
MAX_AUTO_DISPARITIES = 256


@dataclass(frozen=True)
class SgbmParameters:
    """cv2.StereoSGBM's parameters (OpenCV's names in snake case).

    ``p1`` / ``p2`` = 0 take OpenCV's recommended 8 cn block^2 and 32 cn block^2 (cn = image
    channels; the matcher runs on grey images, cn = 1). ``num_disparities`` must be a
    multiple of 16, or 0: chosen per rig by num_disparities_for() (resolved()); the search
    covers [min_disparity, min_disparity + num_disparities).
    """
    min_disparity: int = 0
    num_disparities: int = 0
    block_size: int = 5
    p1: int = 0
    p2: int = 0
    disp12_max_diff: int = 1
    pre_filter_cap: int = 63
    uniqueness_ratio: int = 10
    speckle_window_size: int = 100
    speckle_range: int = 2
    mode: str = 'sgbm'

    def __post_init__(self) -> None:
        if self.num_disparities < 0 or self.num_disparities % 16:
            raise ValueError(f'num_disparities must be a positive multiple of 16 (0: from '
                             f'min_depth and the rig), got {self.num_disparities}')
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f'block_size must be odd and >= 1, got {self.block_size}')
        if self.p1 < 0 or self.p2 < 0 or (self.p1 and self.p2 and self.p2 <= self.p1):
            raise ValueError(f'need 0 <= p1 < p2 (0 = automatic), got p1={self.p1}, '
                             f'p2={self.p2}')
        if not 0 <= self.uniqueness_ratio <= 100:
            raise ValueError(f'uniqueness_ratio is a percentage, got {self.uniqueness_ratio}')
        if self.mode not in SGBM_MODES:
            raise ValueError(f"mode '{self.mode}' not in {sorted(SGBM_MODES)}")

    @property
    def automatic(self) -> bool:
        return self.num_disparities == 0

    @property
    def max_disparity(self) -> int:
        """Largest disparity searched, pixels (a match there is masked: the true disparity
        may lie beyond the search)."""
        if self.automatic:
            raise ValueError('num_disparities 0 is resolved per rig first (resolved())')
        return self.min_disparity + self.num_disparities - 1

    def resolved(self, min_depth: float, fx: float, baseline: float, offset: float = 0.0,
                 width: int = 0) -> SgbmParameters:
        """These parameters with num_disparities chosen for the rig when it is 0."""
        if not self.automatic:
            return self
        return replace(self, num_disparities=num_disparities_for(
            min_depth, fx, baseline, offset, self.min_disparity, width))

    def nearest_depth(self, fx: float, baseline: float, offset: float = 0.0) -> float:
        """Nearest depth (m) the search reaches: Z = fx B / (d + offset) at the largest
        disparity that is not masked, just below max_disparity."""
        largest = self.max_disparity + offset
        return fx * baseline / largest if largest > 0 else math.inf

    def smoothness_penalties(self, channels: int = 1) -> tuple[int, int]:
        area = channels * self.block_size ** 2
        return self.p1 or 8 * area, self.p2 or 32 * area

    def create_matcher(self, channels: int = 1) -> cv2.StereoSGBM:
        p1, p2 = self.smoothness_penalties(channels)
        return cv2.StereoSGBM.create(
            minDisparity=self.min_disparity, numDisparities=self.num_disparities,
            blockSize=self.block_size, P1=p1, P2=p2, disp12MaxDiff=self.disp12_max_diff,
            preFilterCap=self.pre_filter_cap, uniquenessRatio=self.uniqueness_ratio,
            speckleWindowSize=self.speckle_window_size, speckleRange=self.speckle_range,
            mode=SGBM_MODES[self.mode])


def num_disparities_for(min_depth: float, fx: float, baseline: float, offset: float = 0.0,
                        min_disparity: int = 0, width: int = 0) -> int:
    """The smallest multiple of 16 whose search from ``min_disparity`` reaches ``min_depth``:
    the disparity there is d = fx B / Z_min - offset (pixels), and max_disparity must lie
    above it, since a match at the limit is masked. Capped at MAX_AUTO_DISPARITIES and, for a
    ``width``, below the width (the leftmost num_disparities columns have no match)."""
    cap = MAX_AUTO_DISPARITIES
    if width:
        cap = min(cap, max(16, (width - 1) // 16 * 16))
    if not min_depth > 0:
        return cap
    needed = math.floor(fx * baseline / min_depth - offset) + 2 - min_disparity
    return int(min(cap, max(16, math.ceil(needed / 16) * 16)))


def gray8(image: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded camera image (any colour or mono encoding) as (H, W) uint8 grey."""
    enc = lookup_encoding(encoding)
    if enc.kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding; stereo matching needs images',
                               'encoding')
    if enc.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if enc.channels == 1:
        return np.ascontiguousarray(image)
    code = {3: cv2.COLOR_RGB2GRAY, 4: cv2.COLOR_RGBA2GRAY}[enc.channels]
    if encoding.startswith('bgr'):
        code = {3: cv2.COLOR_BGR2GRAY, 4: cv2.COLOR_BGRA2GRAY}[enc.channels]
    return cv2.cvtColor(image, code)


def sgbm_disparity(left_gray: np.ndarray, right_gray: np.ndarray, params: SgbmParameters,
                   matcher: cv2.StereoSGBM | None = None) -> np.ndarray:
    """Left-view disparity in pixels (float32, NaN where SGBM found no match and at the
    search limit, max_disparity, where the true disparity may be larger)."""
    if left_gray.shape != right_gray.shape or left_gray.dtype != right_gray.dtype:
        raise ValueError(f'left {left_gray.shape} {left_gray.dtype} and right '
                         f'{right_gray.shape} {right_gray.dtype} images differ')
    matcher = matcher or params.create_matcher(1 if left_gray.ndim == 2 else
                                               left_gray.shape[2])
    fixed_point = matcher.compute(left_gray, right_gray)
    # Unmatched pixels get (min_disparity - 1) * 16; a best match at the last disparity
    # searched (not interpolated: exactly max_disparity * 16) may lie beyond the search.
    invalid = (fixed_point < params.min_disparity * SGBM_DISPARITY_SCALE) | \
        (fixed_point >= params.max_disparity * SGBM_DISPARITY_SCALE)
    disparity = fixed_point.astype(np.float32) * np.float32(1.0 / SGBM_DISPARITY_SCALE)
    disparity[invalid] = np.nan
    return disparity


def sgbm_valid_window(width: int, height: int, params: SgbmParameters
                      ) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the region where SGBM can find matches (OpenCV's
    getValidDisparityROI): the left num_disparities columns and the block border lack a
    partner in the right image."""
    full = (0, 0, int(width), int(height))
    x, y, w, h = cv2.getValidDisparityROI(full, full, params.min_disparity,
                                          params.num_disparities, params.block_size)
    return int(x), int(y), int(w), int(h)


def stereo_baseline(left: CameraIntrinsics, right: CameraIntrinsics) -> float:
    """Baseline in metres from the projection matrices: P[0, 3] = -fx B for the right camera,
    0 for the left (stereo_image_proc: T = -P_right[0, 3] / P_right[0, 0])."""
    baseline = (left.tx - right.tx) / right.fx
    if not np.isfinite(baseline) or baseline <= 0:
        raise CameraModelError(
            f'no stereo baseline in the camera_info projection matrices (left P[0,3] = '
            f'{left.tx:g}, right P[0,3] = {right.tx:g}; the right camera needs -fx * B < 0)')
    return float(baseline)


def disparity_offset(left: CameraIntrinsics, right: CameraIntrinsics) -> float:
    """cx_right - cx_left (pixels): added to the disparity before depth = fx B / d."""
    return float(right.cx - left.cx)


def stereo_depth(disparity_px: np.ndarray, fx: float, baseline: float, offset: float = 0.0
                 ) -> np.ndarray:
    """Z = fx B / (d + offset), metres; NaN where d is NaN or d + offset <= 0."""
    if offset:
        disparity_px = np.asarray(disparity_px, dtype=np.float32) + np.float32(offset)
    return disparity_to_depth(disparity_px, fx, baseline)


def mirror_post_process(disparity: np.ndarray, mirrored_disparity: np.ndarray,
                        edge_fraction: float = 0.05) -> np.ndarray:
    """Godard et al.'s "pp": combine the disparity of an image with that of its mirror image
    (``mirrored_disparity``, already mirrored back into the image's columns).

    A network trained on stereo pairs leaves a ramp artefact along the border the other view
    does not see: the left edge of its left disparity, which in the mirrored run lies on the
    right. So the leftmost ``edge_fraction`` (5 %) of the columns is taken from the mirrored
    run, the rightmost 5 % from the direct one, the rest is the mean of both, with linear
    ramps over the next 5 % on each side. Column x sits at t = x / (W - 1) in [0, 1]; the
    mirrored run's weight is w_l(t) = 1 - clip((t - e) / e, 0, 1), the direct run's
    w_r(t) = w_l(1 - t), and the mean's 1 - w_l - w_r.
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    mirrored_disparity = np.asarray(mirrored_disparity, dtype=np.float32)
    if disparity.shape != mirrored_disparity.shape or disparity.ndim != 2:
        raise ValueError(f'pp needs two (H, W) maps of one size, got {disparity.shape} and '
                         f'{mirrored_disparity.shape}')
    if not 0 < edge_fraction <= 0.25:
        raise ValueError(f'edge_fraction must be in (0, 0.25], got {edge_fraction}')
    width = disparity.shape[1]
    t = np.linspace(0.0, 1.0, width, dtype=np.float64)
    left_weight = (1.0 - np.clip((t - edge_fraction) / edge_fraction, 0.0, 1.0)
                   ).astype(np.float32)
    right_weight = left_weight[::-1]
    mean = np.float32(0.5) * (disparity + mirrored_disparity)
    return (right_weight * disparity + left_weight * mirrored_disparity
            + (np.float32(1.0) - left_weight - right_weight) * mean).astype(np.float32)
