"""Synthetic shallow depth of field from a metric depth map (thin-lens optics, layered blur).

A small-sensor camera imitating a large-aperture lens ("Simulating DoF by Monocular Depth
Estimation"): every pixel is blurred by a disc the size of its circle of confusion (CoC).

Thin lens, focal length f, f-number N (aperture diameter A = f / N), focused at d_f. A point
at depth d images to a disc on the sensor of diameter

    c(d) = A * f * |d - d_f| / (d * (d_f - f)) = f^2 d_f / (N (d_f - f)) * |1/d_f - 1/d|

so the blur grows linearly with |1/d - 1/d_f|: points at d_f stay sharp, the background
tends to f^2 / (N (d_f - f)) at infinity. On an image W pixels wide from a sensor
sensor_width mm wide, the blur radius in pixels is c / 2 * W / sensor_width.

Layered rendering: the signed radius (negative in front of the focus plane, positive
behind) is quantised to a few levels, 0, 1, 2, 3, 4 px and then sqrt(2) apart (blur radii
differing by less than ~20 % look alike), each pixel splitting its weight between the two
levels around its radius, linearly in radius squared (so the blurred second moment follows
the radius exactly). Layers are drawn from the farthest to the nearest:

    C <- blur(I * w_k) + (1 - blur(w_k)) * C,   A <- blur(w_k) + (1 - blur(w_k)) * A

with a disc kernel of the level's radius, and the result is C / A. A layer is blurred with
only its own pixels, so a sharp foreground never bleeds into the blurred background behind
it (the background's holes are renormalised away by A), and a blurred foreground is drawn
over what lies behind it, spilling over the in-focus subject as a real lens does. Pixels of
the in-focus level are copied, untouched. Large discs are blurred at a reduced resolution
(radius / scale <= 4 px, 9x9 kernels), which keeps 640x480 at tens of milliseconds.

Unknown depth (NaN, -inf, <= 0) is either kept sharp (``unknown_depth='sharp'``, the default:
nothing is invented where depth is unknown) or treated as infinitely far (``'far'``, e.g.
sky beyond a depth model's range). No NaN reaches the output.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

UNKNOWN_DEPTH_POLICIES = ('sharp', 'far')
# Blur radius levels in pixels: fine steps where the eye sees single pixels, then sqrt(2).
FINE_LEVELS = (0.0, 1.0, 2.0, 3.0, 4.0)
LEVEL_RATIO = math.sqrt(2.0)
# Larger discs are blurred at a lower resolution: kernels up to 9x9 stay on OpenCV's direct
# convolution (from 11x11 on it switches to a DFT, far slower for these image sizes).
MAX_WORKING_RADIUS = 4.0


class BokehError(ValueError):
    """Invalid lens, focus or image input; the message names the problem."""


@dataclass(frozen=True)
class ThinLens:
    """The simulated lens: focal length and sensor width in millimetres, f-number N."""
    focal_length_mm: float = 50.0
    f_number: float = 1.8
    sensor_width_mm: float = 36.0

    def __post_init__(self) -> None:
        for name in ('focal_length_mm', 'f_number', 'sensor_width_mm'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise BokehError(f'{name} must be a positive number, got {value}')

    def check_focus(self, focus_distance: float) -> None:
        if not (math.isfinite(focus_distance) and focus_distance * 1e3 > self.focal_length_mm):
            raise BokehError(f'focus distance {focus_distance} m must be beyond the focal '
                             f'length ({self.focal_length_mm} mm)')


def circle_of_confusion_mm(depth: np.ndarray, focus_distance: float, lens: ThinLens
                           ) -> np.ndarray:
    """Signed CoC diameter on the sensor in mm; < 0 in front of the focus plane.

    c = f^2 d_f / (N (d_f - f)) * (1/d_f - 1/d), depth and focus in metres (inf allowed).
    """
    lens.check_focus(focus_distance)
    f = lens.focal_length_mm
    d_f = focus_distance * 1e3
    with np.errstate(divide='ignore'):
        inverse = 1.0 / (np.asarray(depth, dtype=np.float64) * 1e3)
    return f * f * d_f / (lens.f_number * (d_f - f)) * (1.0 / d_f - inverse)


def blur_radius_px(depth: np.ndarray, focus_distance: float, lens: ThinLens,
                   image_width: int) -> np.ndarray:
    """Signed blur radius in pixels of an image ``image_width`` pixels wide (half the CoC)."""
    return 0.5 * circle_of_confusion_mm(depth, focus_distance, lens) * (
        image_width / lens.sensor_width_mm)


def radius_levels(max_radius: float) -> np.ndarray:
    """Unsigned radius levels (px) from 0 up to the first one >= max_radius."""
    levels = list(FINE_LEVELS)
    while levels[-1] < max_radius:
        levels.append(levels[-1] * LEVEL_RATIO)
    return np.asarray(levels if max_radius > 0 else [0.0])


@functools.lru_cache(maxsize=64)
def disc_kernel(radius: float) -> np.ndarray:
    """Normalised disc of ``radius`` px, anti-aliased: each tap is the disc's share of the
    pixel's area (8x8 sub-samples), so the kernel grows smoothly with the radius."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    half = int(math.ceil(radius - 0.5))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    taps = np.arange(-half, half + 1)
    x = (taps[:, None] + sub[None, :]).reshape(-1)
    inside = (x[:, None] ** 2 + x[None, :] ** 2) <= radius * radius
    coverage = inside.reshape(len(taps), 8, len(taps), 8).mean(axis=(1, 3))
    return (coverage / coverage.sum()).astype(np.float32)


def working_scale(radius: float) -> int:
    """Power-of-two down-sampling at which a disc of ``radius`` px is blurred."""
    scale = 1
    while radius / scale > MAX_WORKING_RADIUS:
        scale *= 2
    return scale


def render_depth_of_field(image: np.ndarray, depth: np.ndarray, focus_distance: float,
                          lens: ThinLens = ThinLens(), *, max_radius: float = 32.0,
                          unknown_depth: str = 'sharp') -> np.ndarray:
    """``image`` (H, W[, C], uint8/uint16/float) with shallow depth of field, same dtype.

    ``depth``: metres (NaN/<= 0 unknown); another size than the image is resized (nearest
    neighbour, no mixing across depth edges). ``max_radius`` caps the blur radius in px.
    """
    if image.ndim not in (2, 3) or image.size == 0:
        raise BokehError(f'image must be (H, W) or (H, W, C), got shape {image.shape}')
    if depth.ndim != 2 or depth.size == 0:
        raise BokehError(f'depth must be (H, W), got shape {depth.shape}')
    if unknown_depth not in UNKNOWN_DEPTH_POLICIES:
        raise BokehError(f"unknown_depth '{unknown_depth}' not in {UNKNOWN_DEPTH_POLICIES}")
    if not max_radius >= 0:
        raise BokehError(f'max_radius must be >= 0 px, got {max_radius}')
    height, width = image.shape[:2]
    depth = match_depth_to_image(depth, height, width)
    known = depth > 0                   # +inf (REP 117: beyond range) is infinitely far
    radius = blur_radius_px(np.where(known, depth, np.inf), focus_distance, lens, width)
    radius = radius.astype(np.float32)
    if unknown_depth == 'sharp':
        radius[~known] = 0.0
    np.clip(radius, -max_radius, max_radius, out=radius)

    levels = radius_levels(max_radius)
    lower, upper, lower_weight, upper_weight = _split_between_levels(radius, levels)
    planes = image[:, :, None] if image.ndim == 2 else image
    channels = planes.shape[2]
    # Colour planes + a plane of ones, planar (C + 1, H, W): times a layer's weights, the
    # layer's premultiplied colour and its coverage (alpha); composited far to near.
    pixels = np.empty((channels + 1, height, width), np.float32)
    pixels[:channels] = np.moveaxis(planes, 2, 0)
    pixels[channels] = 1.0
    accumulated = np.zeros_like(pixels)
    for level, (y0, y1, x0, x1) in _level_boxes(lower, upper, len(levels)):
        reach = int(math.ceil(levels[abs(level)])) + 1
        crop = np.s_[max(y0 - reach, 0):y1 + reach, max(x0 - reach, 0):x1 + reach]
        weight = (lower[crop] == level) * lower_weight[crop]
        weight += (upper[crop] == level) * upper_weight[crop]
        layer = pixels[(slice(None),) + crop] * weight
        if level:
            layer = _disc_blur(layer, float(levels[abs(level)]))
        target = accumulated[(slice(None),) + crop]
        target *= 1.0 - layer[channels]              # what this layer lets through
        target += layer

    alpha = accumulated[channels]
    covered = alpha > 1e-6
    out = np.where(covered, accumulated[:channels] / np.where(covered, alpha, 1.0),
                   pixels[:channels])
    return _to_dtype(np.moveaxis(out, 0, 2), image.dtype).reshape(image.shape)


def _split_between_levels(radius: np.ndarray, levels: np.ndarray):
    """Signed levels below and above each pixel's radius (+k behind the focus plane, -k in
    front) and the weights of the two, linear in r^2 (a pixel on a level: all there)."""
    magnitude = np.abs(radius)
    squared = (levels ** 2).astype(np.float32)
    # r^2 span to the next level; inf for the last, so its pixels keep all their weight.
    spans = np.append(np.diff(squared), np.float32(np.inf)).astype(np.float32)
    index = np.searchsorted(levels.astype(np.float32), magnitude, side='right') - 1
    upper_share = (magnitude * magnitude - squared[index]) / spans[index]
    behind = radius >= 0
    # The farther of the two levels is drawn first and the nearer one over it: its weight
    # must be raised so that after compositing and normalisation the pixel still splits
    # share : 1 - share (the pixel's near part would otherwise hide its own far part).
    far_weight = _far_weight(np.where(behind, upper_share, 1.0 - upper_share))
    upper_weight = np.where(behind, far_weight, 1.0 - far_weight).astype(np.float32)
    upper_weight[upper_share <= 0] = 0.0
    lower_weight = 1.0 - upper_weight
    sign = np.where(behind, 1, -1).astype(np.int16)
    lower = index.astype(np.int16) * sign
    upper = np.where(upper_share > 0, lower + sign, lower)
    return lower, upper, lower_weight, upper_weight


def _far_weight(share: np.ndarray) -> np.ndarray:
    """Weight w of the far level giving it ``share`` t of a pixel split over two levels.

    Far first, then near (weight 1 - w) over it: colour (1 - w) c_near + w * w * c_far over
    coverage 1 - w + w^2, so t = w^2 / (1 - w + w^2), i.e. w^2 (1 - t) + t w - t = 0 and
    w = 2t / (t + sqrt(t^2 + 4t (1 - t))) (the root in [0, 1], in a form exact at t = 1).
    """
    root = np.sqrt(share * share + 4.0 * share * (1.0 - share))
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(share > 0, 2.0 * share / (share + root), 0.0)


def _level_boxes(lower: np.ndarray, upper: np.ndarray, count: int):
    """(signed level, (y0, y1, x0, x1)): the bounding box of each level's pixels, from the
    farthest level to the nearest, for the levels some pixel has weight in."""
    height, width = lower.shape
    slots = 2 * count - 1                    # levels -(count - 1) .. count - 1
    rows = np.zeros((height, slots), bool)
    cols = np.zeros((width, slots), bool)
    row_key = np.arange(height, dtype=np.int32)[:, None] * slots + (count - 1)
    col_key = np.arange(width, dtype=np.int32)[None, :] * slots + (count - 1)
    for levels in (lower, upper):
        rows |= np.bincount((row_key + levels).ravel(), minlength=height * slots
                            ).reshape(height, slots) > 0
        cols |= np.bincount((col_key + levels).ravel(), minlength=width * slots
                            ).reshape(width, slots) > 0
    for slot in range(slots - 1, -1, -1):
        in_rows, in_cols = np.flatnonzero(rows[:, slot]), np.flatnonzero(cols[:, slot])
        if in_rows.size:
            yield slot - (count - 1), (int(in_rows[0]), int(in_rows[-1]) + 1,
                                       int(in_cols[0]), int(in_cols[-1]) + 1)


def _disc_blur(layer: np.ndarray, radius: float) -> np.ndarray:
    """Blur (C, h, w) planes with a disc, at a reduced resolution for large radii.

    Zero outside the image ("no pixel there"), renormalised later by the alpha plane.
    """
    scale = working_scale(radius)
    # Area down-sampling and bilinear up-sampling spread a point by about s^2 / 2 px^2
    # (second moment, both axes): the disc is shrunk to keep the blur's second moment that
    # of the thin-lens disc, R^2 / 2.
    kernel = disc_kernel(math.sqrt(radius * radius - scale * scale) / scale if scale > 1
                         else radius)
    h, w = layer.shape[1:]
    small_size = (max(1, -(-w // scale)), max(1, -(-h // scale)))
    out = np.empty_like(layer)
    for plane, target in zip(layer, out):
        if scale > 1:
            plane = cv2.resize(plane, small_size, interpolation=cv2.INTER_AREA)
        plane = cv2.filter2D(plane, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        if scale > 1:
            plane = cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)
        target[...] = plane
    return out


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def match_depth_to_image(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth (float32 metres) at the image's size; nearest neighbour when resizing."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.shape == (height, width):
        return depth
    return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)


def focus_distance_at(depth: np.ndarray, x: float, y: float, image_size: tuple[int, int],
                      window: int = 5) -> float | None:
    """Autofocus: median known depth (m) in a ``window`` square around image pixel (x, y).

    ``image_size`` = (width, height) of the image the point refers to (the depth map may
    have another resolution). None when the point is outside or has no known depth near it.
    """
    width, height = image_size
    if not (0 <= x < width and 0 <= y < height):
        return None
    u = int(x * depth.shape[1] / width)
    v = int(y * depth.shape[0] / height)
    half = window // 2
    patch = depth[max(v - half, 0):v + half + 1, max(u - half, 0):u + half + 1]
    values = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(values)) if values.size else None
