"""Depth from a near-infrared camera (Shen et al.): NIR -> CTN -> pseudo-RGB -> RGB depth model.

Two exported models, chained here rather than fused into one graph, so either can be swapped
on its own (a CTN trained for another NIR camera, any RGB depth model of this package):

1. the translation model (spec ``input_kind: nir``, ``output_kind: translated_image``, e.g.
   models/ctn_synthetic.onnx): the NIR image in, pseudo-RGB in ``output_range`` out;
2. the depth model (any RGB or gray model, e.g. the stereo-trained DPN
   models/dpn_synthetic.onnx), run by MonoDepthEstimator on the 8-bit pseudo-RGB exactly as
   it would run on a camera's rgb8 image, so what nir/pseudo_rgb shows is what the depth
   model saw.

A single model whose own output is depth (a NIR depth model, or a NIR -> depth graph fused
by the user) runs as one stage with no pseudo-RGB.

Metric scale of a disparity model (``disparity_fraction``): depth = (fx / W) * B / d with the
NIR camera's fx (camera_info) or the depth model's ``focal_fraction``, and the baseline B of
the rig the depth model was trained on (its spec, or the ``baseline`` argument); for other
depth models, ``depth_scale`` multiplies the result (e.g. a scale measured against a range
sensor). ROS-free: the node, the evaluation and the tests run this same code.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.runtime.estimator import DepthResult, MonoDepthEstimator
from depth_nodes.runtime.model import LoadedModel

TRANSLATED = 'translated_image'
# Input kinds a second-stage depth model may have: it is fed an RGB image.
IMAGE_INPUT_KINDS = ('rgb', 'gray')


def translated_image_to_rgb8(raw: np.ndarray, output_range: tuple[float, float]
                             ) -> np.ndarray:
    """(..., 3, H, W) translation output in ``output_range`` -> (..., H, W, 3) uint8 RGB:
    pixel = round(255 (value - lo) / (hi - lo)), clipped to [0, 255]."""
    lo, hi = output_range
    scaled = (np.asarray(raw, np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(pixels, -3, -1))


class NirDepthEstimator:
    """A NIR image in, metric depth (and the pseudo-RGB) out; see the module docstring.

    ``translation``: the CTN, or a one-stage NIR depth model when ``depth`` is None.
    ``spec`` is the depth stage's spec (valid range, output kind) for the node's outputs.
    """

    def __init__(self, translation: LoadedModel, depth: LoadedModel | None = None,
                 output_resolution: str = 'input'):
        first = translation.spec
        if first.output_kind == TRANSLATED:
            if depth is None:
                raise ValueError(f"'{translation.engine.model_path.name}' translates images "
                                 '(output kind translated_image); it needs a depth model for '
                                 'the pseudo-RGB (parameter depth_model)')
            if depth.spec.output_kind == TRANSLATED or \
                    depth.spec.input_kind not in IMAGE_INPUT_KINDS:
                raise ValueError(f"depth model '{depth.engine.model_path.name}' takes "
                                 f"{depth.spec.input_kind} input and outputs "
                                 f'{depth.spec.output_kind}; the second stage must be an RGB '
                                 f'(or gray) depth model')
            self.translation: LoadedModel | None = translation
            self.translation_spec: ModelSpec | None = _static_size(translation)
            self.depth_stage = MonoDepthEstimator(depth, output_resolution)
        else:
            if depth is not None:
                raise ValueError(f"'{translation.engine.model_path.name}' is already a depth "
                                 f'model (output kind {first.output_kind}); leave depth_model '
                                 'empty to run it alone, or give a translation model')
            self.translation = self.translation_spec = None
            self.depth_stage = MonoDepthEstimator(translation, output_resolution)
        self.spec: ModelSpec = self.depth_stage.spec

    @property
    def two_stage(self) -> bool:
        return self.translation is not None

    def translate(self, image: np.ndarray, encoding: str) -> tuple[np.ndarray, float]:
        """NIR image (mono8 / mono16) -> (H', W', 3) uint8 pseudo-RGB at the translation
        model's size, and the engine time in seconds."""
        spec = self.translation_spec
        tensor = image_to_tensor(image, encoding, spec)
        start = time.perf_counter()
        outputs = self.translation.engine.run({spec.input_names[0]: tensor})
        elapsed = time.perf_counter() - start
        raw = np.asarray(outputs[spec.output_name])
        if raw.ndim != 4 or raw.shape[:2] != (1, 3):
            raise ValueError(f'the translation model output {spec.output_name} has shape '
                             f'{raw.shape}; expected (1, 3, H, W) RGB')
        return translated_image_to_rgb8(raw[0], spec.output_range), elapsed

    def estimate(self, image: np.ndarray, encoding: str,
                 camera: CameraIntrinsics | None = None, baseline: float | None = None,
                 depth_range: tuple[float, float] | None = None,
                 depth_scale: float = 1.0) -> DepthResult:
        """A decoded NIR image -> metric depth at the input (or model) resolution.

        ``baseline`` (m) replaces the depth model's rig baseline; ``depth_scale`` multiplies
        the depth, and ``depth_range`` (m) applies to the scaled depth (outside: NaN).
        ``extras``: ``pseudo_rgb`` (uint8, the translation model's size; two stages only),
        ``translation_s`` and ``depth_s`` (engine seconds).
        """
        if not depth_scale > 0:
            raise ValueError(f'depth_scale must be > 0, got {depth_scale}')
        extras = {}
        translation_s = 0.0
        if self.translation is not None:
            pseudo_rgb, translation_s = self.translate(image, encoding)
            tensor = image_to_tensor(pseudo_rgb, 'rgb8', self.spec)
            extras['pseudo_rgb'] = pseudo_rgb
        else:
            tensor = image_to_tensor(image, encoding, self.spec)
        raw, depth_s = self.depth_stage.infer(tensor)
        # Masking the unscaled depth at range / s equals masking the scaled depth at range.
        lo, hi = depth_range if depth_range is not None else (self.spec.min_depth,
                                                              self.spec.max_depth)
        result = self.depth_stage.raw_to_result(raw, image.shape[0], image.shape[1], camera,
                                                baseline, translation_s + depth_s,
                                                (lo / depth_scale, hi / depth_scale))
        if depth_scale != 1.0:
            result.depth *= np.float32(depth_scale)
        result.extras.update(extras, translation_s=translation_s, depth_s=depth_s)
        return result


def _static_size(model: LoadedModel) -> ModelSpec:
    """The translation spec with its input size (from the graph when the spec has none)."""
    spec = model.spec
    if spec.input_height and spec.input_width:
        return spec
    shape = model.engine.input_shapes[spec.input_names[0]]
    if len(shape) != 4 or min(shape[2:]) <= 0:
        raise ValueError('the translation model has no static input size and the spec gives '
                         'none (set spec.input_height and spec.input_width)')
    return replace(spec, input_height=shape[2], input_width=shape[3])
