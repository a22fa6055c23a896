"""Stereo estimators: a rectified pair and both cameras' intrinsics in, the left view's
metric depth and disparity out (ROS-free; stereo_depth_node and tests run the same code).

- :class:`SgbmStereoEstimator`: OpenCV semi-global block matching, the classical reference;
  no model needed.
- :class:`LearnedStereoEstimator`: a disparity model (Shen et al.'s DPN) on the left image
  alone; its output, a fraction of the width, times the width is the disparity in pixels.

SGBM turns disparity into depth with the live rig: Z = fx B / (d + cx_r - cx_l), B from the
right camera's P[0, 3] = -fx B (as stereo_image_proc) unless a baseline is given.

A learned model sees one image, so what it predicts is the depth of the rig it was trained
on, read from the apparent size of things: the live baseline cannot change what it sees,
while the live focal length (per image width) makes things look nearer or farther (the
canonical-camera argument, as in Metric3D). With the training rig's baseline B_t in the
spec, its output fraction f (disparity / width) becomes

    Z = (fx / W) B_t / (f + o),    o = (cx_r - cx_l) / W

with fx / W of the live camera, and the published disparity is that of the live rig,
d = fx B / Z = (f W + cx_r - cx_l) B / B_t, so Z = f T / d holds in the DisparityImage. o, the
live rig's principal-point offset, is taken to be the training rig's too (exact when the
model was trained on this rig or both offsets are 0, as stereo_image_proc rectifies). A spec
without a training baseline (0) keeps the model's disparity as this rig's: Z = fx B / (f W +
cx_r - cx_l) with the live B. ``focal_ratio`` in the extras is the live fx / W over the
spec's focal_fraction: far from 1 the depth leans on the apparent-size assumption.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import resize_output
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.core.stereo import (MAX_AUTO_DISPARITIES, SgbmParameters, disparity_offset,
                                     gray8, sgbm_disparity, sgbm_valid_window, stereo_baseline,
                                     stereo_depth)
from depth_nodes.runtime.estimator import DepthResult, MonoDepthEstimator
from depth_nodes.runtime.model import LoadedModel

log = logging.getLogger(__name__)

# Smallest disparity increment (DisparityImage.delta_d): SGBM's fixed point has 4 fractional
# bits; a network's float output is continuous, 1/256 px lies below its noise.
SGBM_DISPARITY_STEP = 1.0 / 16
LEARNED_DISPARITY_STEP = 1.0 / 256


@dataclass
class StereoResult:
    depth: np.ndarray                      # (H, W) float32 metres, NaN = no estimate
    disparity: np.ndarray                  # (H, W) float32 pixels, Z = fx B / disparity
    camera: CameraIntrinsics               # left intrinsics at the output size
    baseline: float                        # metres
    min_disparity: float                   # search range of the matcher / model, pixels
    max_disparity: float
    disparity_step: float                  # smallest disparity increment, pixels
    valid_window: tuple[int, int, int, int]   # x, y, width, height where matches can exist
    inference_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    def depth_result(self) -> DepthResult:
        return DepthResult(self.depth, self.camera, self.inference_s, dict(self.extras))


def rig_baseline(left: CameraIntrinsics, right: CameraIntrinsics,
                 baseline: float | None) -> float:
    """A given baseline (> 0), else the one in the projection matrices (CameraModelError
    when they hold none)."""
    return float(baseline) if baseline else stereo_baseline(left, right)


def _check_pair(left: np.ndarray, right: np.ndarray, left_camera: CameraIntrinsics,
                right_camera: CameraIntrinsics) -> None:
    if left.shape[:2] != right.shape[:2]:
        raise ValueError(f'left image is {left.shape[1]}x{left.shape[0]} but the right image '
                         f'is {right.shape[1]}x{right.shape[0]}')
    for name, camera in (('left', left_camera), ('right', right_camera)):
        if (camera.width, camera.height) != (left.shape[1], left.shape[0]):
            raise ValueError(f'{name} camera_info is {camera.width}x{camera.height} but the '
                             f'images are {left.shape[1]}x{left.shape[0]}')


def _mask_range(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    with np.errstate(invalid='ignore'):
        depth[(depth < depth_range[0]) | (depth > depth_range[1])] = np.nan
    return depth


class SgbmStereoEstimator:
    """OpenCV StereoSGBM on the grey images; depth at the input resolution.

    With num_disparities 0 the search range follows the rig and min_depth (the matcher is
    rebuilt when they change); a range that cannot reach min_depth is logged once.
    """

    def __init__(self, params: SgbmParameters = SgbmParameters(), min_depth: float = 0.1,
                 max_depth: float = 100.0):
        self.params = params
        self.search: SgbmParameters | None = None       # params with the range resolved
        self.matcher = None if params.automatic else params.create_matcher(1)
        self._warned = False
        # Only the depth range is used (the node's min_depth / max_depth default to it).
        self.spec = ModelSpec(method='sgbm', input_kind='stereo', min_depth=min_depth,
                              max_depth=max_depth)
        search = 'automatic' if params.automatic else str(params.num_disparities)
        self.description = (f'OpenCV {cv2.__version__} StereoSGBM '
                            f'({search} disparities from '
                            f'{params.min_disparity}, block {params.block_size}, '
                            f'mode {params.mode})')

    def search_for(self, fx: float, baseline: float, offset: float, width: int,
                   min_depth: float) -> SgbmParameters:
        """The parameters for this rig (range resolved), with their matcher built."""
        search = self.params.resolved(min_depth, fx, baseline, offset, width)
        if search != self.search:
            if self.params.automatic:
                log.info(f'StereoSGBM: {search.num_disparities} disparities from '
                         f'{search.min_disparity} for min_depth {min_depth:g} m, fx '
                         f'{fx:g} px, baseline {baseline:g} m')
            self.search, self.matcher = search, search.create_matcher(1)
        nearest = search.nearest_depth(fx, baseline, offset)
        if nearest > min_depth * 1.001 and not self._warned:
            self._warned = True
            log.warning(
                f'StereoSGBM searches {search.num_disparities} disparities from '
                f'{search.min_disparity}: it reaches {nearest:.3g} m, not min_depth '
                f'{min_depth:g} m (fx {fx:g} px, baseline {baseline:g} m); nearer pixels are '
                f'masked. Raise sgbm.num_disparities (0: automatic, up to '
                f'{MAX_AUTO_DISPARITIES}) or min_depth.')
        return search

    def estimate(self, left: np.ndarray, left_encoding: str, right: np.ndarray,
                 right_encoding: str, left_camera: CameraIntrinsics,
                 right_camera: CameraIntrinsics, baseline: float | None = None,
                 depth_range: tuple[float, float] | None = None) -> StereoResult:
        _check_pair(left, right, left_camera, right_camera)
        b = rig_baseline(left_camera, right_camera, baseline)
        offset = disparity_offset(left_camera, right_camera)
        depth_range = depth_range or (self.spec.min_depth, self.spec.max_depth)
        p = self.search_for(left_camera.fx, b, offset, left.shape[1], depth_range[0])
        # OpenCV refuses a search range (plus half a block) as wide as the image (cv::error,
        # 'input images are too small'): a clear, counted rejection instead.
        if max(p.max_disparity + 1, 0) + p.block_size // 2 >= \
                left.shape[1] + min(p.min_disparity, 0):
            raise ImageFormatError(
                f'the pair is {left.shape[1]} px wide but StereoSGBM searches disparities '
                f'{p.min_disparity}..{p.max_disparity}: set sgbm.num_disparities below the '
                'width (0: automatic)', 'image_too_small')
        start = time.perf_counter()
        disparity = sgbm_disparity(gray8(left, left_encoding), gray8(right, right_encoding),
                                   p, self.matcher)
        seconds = time.perf_counter() - start
        depth = stereo_depth(disparity, left_camera.fx, b, offset)
        depth = _mask_range(depth, depth_range)
        return StereoResult(depth, disparity + np.float32(offset), left_camera, b,
                            p.min_disparity + offset, p.max_disparity + offset,
                            SGBM_DISPARITY_STEP,
                            sgbm_valid_window(left.shape[1], left.shape[0], p), seconds)


class LearnedStereoEstimator:
    """A disparity model (output_kind 'disparity_fraction', e.g. the DPN) on the left image;
    the right image is not used at run time."""

    def __init__(self, model: LoadedModel, output_resolution: str = 'input',
                 post_process: str = 'none'):
        if model.spec.output_kind != 'disparity_fraction':
            raise ValueError(f"stereo depth from a model needs a disparity model "
                             f"(output_kind 'disparity_fraction'); "
                             f"'{model.engine.model_path.name}' outputs "
                             f'{model.spec.output_kind}')
        self.mono = MonoDepthEstimator(model, output_resolution, post_process)
        self.spec = self.mono.spec
        self.description = model.describe()

    def estimate(self, left: np.ndarray, left_encoding: str, right: np.ndarray,
                 right_encoding: str, left_camera: CameraIntrinsics,
                 right_camera: CameraIntrinsics, baseline: float | None = None,
                 depth_range: tuple[float, float] | None = None) -> StereoResult:
        _check_pair(left, right, left_camera, right_camera)
        b = rig_baseline(left_camera, right_camera, baseline)
        spec = self.spec
        raw, seconds = self.mono.infer_post_processed(image_to_tensor(left, left_encoding,
                                                                      spec))
        height, width = left.shape[:2] if self.mono.output_resolution == 'input' else raw.shape
        camera, right_out = left_camera, right_camera
        if (width, height) != (left_camera.width, left_camera.height):
            camera, right_out = left_camera.scaled(width, height), right_camera.scaled(width,
                                                                                       height)
        fraction = resize_output(raw, height, width).astype(np.float32)
        if spec.output_scale != 1.0 or spec.output_shift != 0.0:
            fraction = fraction * np.float32(spec.output_scale) + np.float32(spec.output_shift)
        offset = disparity_offset(camera, right_out)
        # The model's disparity is that of the image it saw; the principal-point offset
        # belongs to the rig. Depth from the training baseline when the spec has one (module
        # docstring), else from this rig's; the published disparity is this rig's fx B / Z.
        disparity = fraction * np.float32(width) + np.float32(offset)
        training_baseline = spec.baseline if spec.baseline > 0 else b
        depth = _mask_range(stereo_depth(disparity, camera.fx, training_baseline),
                            depth_range or (spec.min_depth, spec.max_depth))
        to_live = np.float32(b / training_baseline)
        extras = {'training_baseline': spec.baseline > 0}
        if spec.focal_fraction > 0:
            extras['focal_ratio'] = camera.fx / width / spec.focal_fraction
        max_fraction = float(spec.extras.get('max_disparity', 1.0))
        return StereoResult(depth, disparity * to_live, camera, b, offset * to_live,
                            (max_fraction * width + offset) * to_live, LEARNED_DISPARITY_STEP,
                            (0, 0, width, height), seconds, extras)
