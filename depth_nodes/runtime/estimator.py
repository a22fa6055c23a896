"""Depth estimators: pre-processing + engine + post-processing for one kind of input.

ROS-free, so the nodes, the offline bag processor and the tests run the same code path.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import (SCALE_FREE_KINDS, crop_letterbox, output_to_metres,
                                          output_to_prediction, resize_output, scale_fit_kind,
                                          squeeze_output)
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.core.stereo import mirror_post_process
from depth_nodes.runtime.model import LoadedModel

OUTPUT_RESOLUTIONS = ('input', 'model')
# Both run the network a second time, on the mirrored input (2x the time):
# 'pp': Godard et al.'s post-processing of stereo-trained disparity models, the two runs
#   combined by depth_nodes.core.stereo.mirror_post_process;
# 'flip': the plain mean of the two raw outputs (mirrored back), in the output's own space
#   (log depth, normalized depth, ...), for any model. A depth map that does not depend on
#   which way round the scene is seen (flip_mean).
POST_PROCESSES = ('none', 'pp', 'flip')
POST_PROCESSED_KINDS = ('disparity_fraction',)


def flip_mean(raw: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """post_process 'flip': the mean of a raw (h, w) output and the output of the mirrored
    input (``mirrored``, as the network gave it: it is mirrored back here)."""
    return (np.float32(0.5) * (raw + mirrored[:, ::-1])).astype(np.float32)


@dataclass
class DepthResult:
    depth: np.ndarray                     # (H, W) float32 metres, NaN = no estimate
    camera: CameraIntrinsics | None       # intrinsics of ``depth`` (None without camera_info)
    inference_s: float                    # engine time only
    extras: dict[str, Any] = field(default_factory=dict)


class MonoDepthEstimator:
    """One image in, one metric depth map out (RGB, gray or NIR models).

    ``scale_fitted``: the caller fits the metric scale to sparse depth (predict()); only
    then is a model without metric scale (SCALE_FREE_KINDS) accepted.
    """

    def __init__(self, model: LoadedModel, output_resolution: str = 'input',
                 post_process: str = 'none', scale_fitted: bool = False):
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ValueError(f"output_resolution '{output_resolution}' not in "
                             f'{OUTPUT_RESOLUTIONS}')
        if post_process not in POST_PROCESSES:
            raise ValueError(f"post_process '{post_process}' not in {POST_PROCESSES}")
        if post_process == 'pp' and model.spec.output_kind not in POST_PROCESSED_KINDS:
            raise ValueError(f"post_process 'pp' needs a disparity model "
                             f'({POST_PROCESSED_KINDS}); this one outputs '
                             f"{model.spec.output_kind} (use 'flip')")
        if model.spec.output_kind in SCALE_FREE_KINDS and not scale_fitted:
            raise ValueError(f'the model outputs {model.spec.output_kind}, which has no metric '
                             'scale: it runs only with a scale fit to sparse metric depth (set '
                             'scale_from to semidense or points)')
        self.post_process = post_process
        self.model = model
        self.spec: ModelSpec = model.spec
        self.output_resolution = output_resolution
        self._input_name = self.spec.input_names[0]
        if not (self.spec.input_height and self.spec.input_width):
            shape = model.engine.input_shapes[self._input_name]
            if len(shape) != 4 or min(shape[2:]) <= 0:
                raise ValueError('the model has no static input size and the spec gives none '
                                 '(set spec.input_height and spec.input_width)')
            self.spec = replace(self.spec, input_height=shape[2], input_width=shape[3])
        self._ranged_spec = self.spec

    def spec_for_range(self, depth_range: tuple[float, float] | None) -> ModelSpec:
        """The spec with [min_depth, max_depth] replaced (cached: called every frame)."""
        if depth_range is None:
            return self.spec
        spec = self._ranged_spec
        if (spec.min_depth, spec.max_depth) != tuple(depth_range):
            spec = self._ranged_spec = replace(self.spec, min_depth=depth_range[0],
                                               max_depth=depth_range[1])
        return spec

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        """Run the engine on a prepared (1, C, H, W) tensor -> raw (h, w) output, seconds."""
        start = time.perf_counter()
        outputs = self.model.engine.run({self._input_name: tensor})
        elapsed = time.perf_counter() - start
        return squeeze_output(outputs[self.spec.output_name]), elapsed

    def infer_post_processed(self, tensor: np.ndarray) -> tuple[np.ndarray, float]:
        """infer(), plus the mirrored run combined with it (post_process 'pp' or 'flip')."""
        raw, seconds = self.infer(tensor)
        if self.post_process == 'none':
            return raw, seconds
        mirrored, more = self.infer(np.ascontiguousarray(tensor[..., ::-1]))
        if self.post_process == 'pp':
            return mirror_post_process(raw, mirrored[:, ::-1]), seconds + more
        return flip_mean(raw, mirrored), seconds + more

    def estimate(self, image: np.ndarray, encoding: str,
                 camera: CameraIntrinsics | None = None, baseline: float | None = None,
                 depth_range: tuple[float, float] | None = None) -> DepthResult:
        """A decoded camera image (any supported encoding) -> metric depth.

        ``depth_range`` (metres) replaces the model's valid range; outside it is NaN.
        """
        tensor = image_to_tensor(image, encoding, self.spec)
        raw, inference_s = self.infer_post_processed(tensor)
        return self.raw_to_result(raw, image.shape[0], image.shape[1], camera, baseline,
                                  inference_s, depth_range)

    @property
    def scale_fit_kind(self) -> str:
        """The sparse-depth fit predict()'s output takes (depth_nodes.core.scale_fit)."""
        return scale_fit_kind(self.spec.output_kind)

    def predict(self, image: np.ndarray, encoding: str,
                camera: CameraIntrinsics | None = None, baseline: float | None = None
                ) -> DepthResult:
        """estimate() before metric scale: ``depth`` holds what a scale fit takes
        (output_to_prediction: depth in the model's metres, unlimited, or relative inverse
        depth), at the output resolution, with the output's camera."""
        tensor = image_to_tensor(image, encoding, self.spec)
        raw, inference_s = self.infer_post_processed(tensor)
        raw, out_camera = self._output_geometry(raw, image.shape[0], image.shape[1], camera)
        prediction = output_to_prediction(raw, self.spec, image_width=raw.shape[1],
                                          fx=out_camera.fx if out_camera else None,
                                          baseline=baseline)
        return DepthResult(prediction, out_camera, inference_s)

    def _output_geometry(self, raw: np.ndarray, height: int, width: int,
                         camera: CameraIntrinsics | None
                         ) -> tuple[np.ndarray, CameraIntrinsics | None]:
        """The raw output at the output resolution, and the camera of that resolution (a
        letterboxed model's output cropped to the image first)."""
        raw = crop_letterbox(raw, height, width, self.spec)
        if self.output_resolution == 'input':
            out_h, out_w = height, width
        else:
            out_h, out_w = raw.shape
        out_camera = None
        if camera is not None:
            out_camera = camera if (out_w, out_h) == (camera.width, camera.height) \
                else camera.scaled(out_w, out_h)
        return resize_output(raw, out_h, out_w), out_camera

    def raw_to_result(self, raw: np.ndarray, height: int, width: int,
                      camera: CameraIntrinsics | None, baseline: float | None,
                      inference_s: float, depth_range: tuple[float, float] | None = None
                      ) -> DepthResult:
        raw, out_camera = self._output_geometry(raw, height, width, camera)
        depth = output_to_metres(raw, self.spec, image_width=raw.shape[1],
                                 fx=out_camera.fx if out_camera else None, baseline=baseline,
                                 valid_range=depth_range)
        return DepthResult(depth, out_camera, inference_s)
