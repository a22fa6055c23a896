"""Network outputs -> metric depth images (REP 118: float32 metres, NaN = no estimate)."""
from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import letterbox_box


# Output kinds with no metric scale: metres only after a fit to sparse metric depth.
SCALE_FREE_KINDS = ('relative_inverse_depth',)


class OutputConversionError(ValueError):
    """The output cannot be turned into metres (e.g. disparity without a focal length)."""


def scale_fit_kind(output_kind: str) -> str:
    """The sparse-depth fit (depth_nodes.core.scale_fit.FIT_KINDS) a model output needs:
    scale and shift in inverse depth for relative inverse depth, else a depth scale."""
    return 'inverse_depth_affine' if output_kind in SCALE_FREE_KINDS else 'depth_scale'


def output_to_prediction(raw: np.ndarray, spec: ModelSpec, *, image_width: int | None = None,
                         fx: float | None = None, baseline: float | None = None
                         ) -> np.ndarray:
    """What a sparse-depth scale fit takes (scale_fit_kind): the relative inverse depth
    (after output_scale / output_shift), or for every other kind the depth in the model's
    metres, not limited to any range (the range applies after scaling). NaN: not finite."""
    if spec.output_kind in SCALE_FREE_KINDS:
        value = raw.astype(np.float32, copy=True)
        if spec.output_scale != 1.0 or spec.output_shift != 0.0:
            value = value * np.float32(spec.output_scale) + np.float32(spec.output_shift)
        value[~np.isfinite(value)] = np.nan
        return value
    return output_to_metres(raw, spec, image_width=image_width, fx=fx, baseline=baseline,
                            valid_range=(0.0, np.inf))


def output_to_metres(raw: np.ndarray, spec: ModelSpec, *, image_width: int | None = None,
                     fx: float | None = None, baseline: float | None = None,
                     valid_range: tuple[float, float] | None = None) -> np.ndarray:
    """Convert a raw (H, W) network output to metres according to ``spec.output_kind``.

    disparity_fraction needs the focal length in pixels of the image the fraction refers
    to: ``fx`` with ``image_width`` (from camera_info), or the spec's focal_fraction.
    Pixels outside ``valid_range`` (default: the spec's [min_depth, max_depth]) or
    non-finite become NaN. normalized_depth always maps onto the spec's own range: a valid
    range chosen by the user clips the depth, it does not rescale it.
    """
    value = raw.astype(np.float32, copy=False)
    if spec.output_scale != 1.0 or spec.output_shift != 0.0:
        value = value * np.float32(spec.output_scale) + np.float32(spec.output_shift)
    kind = spec.output_kind
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if kind == 'metric_depth':
            depth = value.astype(np.float32, copy=True)
        elif kind == 'log_depth':
            depth = np.exp(value)
        elif kind == 'inverse_depth':
            depth = np.float32(1.0) / value
        elif kind == 'normalized_depth':
            lo, hi = spec.output_range
            t = (value - np.float32(lo)) / np.float32(hi - lo)
            if spec.near_is_bright:
                t = 1.0 - t
            depth = np.float32(spec.min_depth) + t * np.float32(spec.max_depth - spec.min_depth)
        elif kind == 'disparity_fraction':
            depth = disparity_fraction_to_depth(value, spec, image_width=image_width, fx=fx,
                                                baseline=baseline)
        elif kind in SCALE_FREE_KINDS:
            raise OutputConversionError(f'{kind} has no metric scale: it needs a fit to sparse '
                                        'metric depth (mono_depth_node parameter scale_from)')
        else:  # pragma: no cover - ModelSpec.validate() rejects other kinds
            raise OutputConversionError(f'unknown output kind {kind}')
    depth = depth.astype(np.float32, copy=False)
    lo, hi = (spec.min_depth, spec.max_depth) if valid_range is None else valid_range
    invalid = ~np.isfinite(depth) | (depth < lo) | (depth > hi)
    depth[invalid] = np.nan
    return depth


def disparity_fraction_to_depth(fraction: np.ndarray, spec: ModelSpec, *,
                                image_width: int | None, fx: float | None,
                                baseline: float | None) -> np.ndarray:
    """Z = fx * B / (fraction * W): disparity as a fraction of width -> metres.

    fx / W is the focal length as a fraction of width, which does not change when the image
    is resized, so the depth does not depend on the resolution the network ran at.
    """
    baseline = spec.baseline if baseline is None else baseline
    if baseline <= 0:
        raise OutputConversionError('disparity output needs a stereo baseline > 0 '
                                    '(parameter baseline or the model spec)')
    if fx is not None and image_width:
        focal_fraction = fx / image_width
    elif spec.focal_fraction > 0:
        focal_fraction = spec.focal_fraction
    else:
        raise OutputConversionError('disparity output needs camera_info or spec.focal_fraction')
    return np.float32(focal_fraction * baseline) / fraction


def crop_letterbox(raw: np.ndarray, image_height: int, image_width: int, spec: ModelSpec
                   ) -> np.ndarray:
    """The part of a raw (h, w) output that sees the image, for a letterboxed model
    (spec.resize_mode; core/preprocess.letterbox_box); any other output unchanged. The
    output may have its own resolution (e.g. Eigen et al.'s quarter-size map): the box is
    scaled to it."""
    in_h, in_w = spec.input_size
    if spec.resize_mode != 'letterbox' or not (in_h and in_w):
        return raw
    height, width, top, left = letterbox_box(image_height, image_width, in_h, in_w)
    if (height, width) == (in_h, in_w):
        return raw
    sy, sx = raw.shape[0] / in_h, raw.shape[1] / in_w
    row0, col0 = int(round(top * sy)), int(round(left * sx))
    rows = max(1, int(round((top + height) * sy)) - row0)
    cols = max(1, int(round((left + width) * sx)) - col0)
    return raw[row0:row0 + rows, col0:col0 + cols]


def resize_output(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a raw (H, W) network output to the camera resolution (bilinear).

    Resizing the raw output (log depth, disparity, ...) rather than metres keeps the
    interpolation in the space the network predicts in.
    """
    if raw.shape == (height, width):
        return raw
    return cv2.resize(raw, (width, height), interpolation=cv2.INTER_LINEAR)


def squeeze_output(raw: np.ndarray) -> np.ndarray:
    """(1, 1, H, W), (1, H, W) or (H, W) -> (H, W)."""
    raw = np.asarray(raw)
    while raw.ndim > 2 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim != 2:
        raise OutputConversionError(f'expected a single-channel depth output, got {raw.shape}')
    return raw
