"""Which pixels a semi-dense SLAM reconstructs, and LiDAR-like uniform sampling.

Semi-dense visual SLAM (LSD-SLAM) estimates depth only where the image has enough intensity
gradient for a stereo match along the epipolar line; Makarov et al. (semi-dense depth
interpolation) simulate its output on RGB-D data by keeping pixels whose gradient magnitude
passes an adaptive threshold, which gives 10-15 % of the pixels on typical indoor images.
The training data and the semidense node both use this function, so the network is trained
on the sparsity pattern it sees at run time.

The second half turns what a semi-dense node receives (an LSD-SLAM (inverse) depth image with
its variance, or a point cloud projected into the camera) into the network input, in the
same way for training batches and for the node (semidense_to_tensor).
"""
from __future__ import annotations

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, project_points, rasterize_depth
from depth_nodes.core.encodings import ImageFormatError, lookup_encoding
from depth_nodes.core.preprocess import resize_image

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


# --- semi-dense depth -> network input --------------------------------------------------------
#
# The network sees depth divided by a per-frame scale s (a high percentile of the known
# depths), so its inputs lie in about (0, 1] whatever the scene (a room, a street) and
# whatever the scale of a monocular SLAM map (LSD-SLAM's depth is known only up to scale);
# its output is depth / s too, and metres are output * s. Unknown pixels are encoded
# explicitly: depth channel 0 *and* mask channel 0. A known depth is never 0 after the
# division (depth > 0), so "0 with mask 1" cannot occur and NaN never becomes a depth.

SEMIDENSE_CHANNELS = ('depth', 'mask', 'intensity')   # channel order of the network input
DEPTH_NORMALIZATION = 'frame_percentile'
DEFAULT_SCALE_PERCENTILE = 95.0


def known_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a usable depth (finite and > 0)."""
    with np.errstate(invalid='ignore'):
        return np.isfinite(depth) & (depth > 0)


def depth_from_semidense_image(values: np.ndarray, *, inverse_depth: bool = False,
                               variance: np.ndarray | None = None,
                               max_variance: float = 0.0) -> np.ndarray:
    """A semi-dense image (32FC1) -> (H, W) float32 metres, NaN where unknown.

    ``values`` is depth in metres, or inverse depth in 1/m when ``inverse_depth`` (LSD-SLAM's
    native quantity); 0, negative, NaN and +-Inf are unknown either way. With ``variance``
    (of the same quantity, same size) and ``max_variance`` > 0, pixels whose variance is not
    finite or exceeds ``max_variance`` are unknown too (LSD-SLAM's idepth_var filter).
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2:
        raise ImageFormatError(f'semi-dense depth must be one channel (H, W), got shape '
                               f'{values.shape}', 'shape')
    known = known_depth(values)
    if variance is not None:
        variance = np.asarray(variance, dtype=np.float32)
        if variance.shape != values.shape:
            raise ImageFormatError(f'variance image {variance.shape[::-1]} does not match the '
                                   f'depth image {values.shape[::-1]}', 'size_mismatch')
        if max_variance > 0:
            with np.errstate(invalid='ignore'):
                known &= np.isfinite(variance) & (variance >= 0) & (variance <= max_variance)
    depth = np.full(values.shape, np.nan, dtype=np.float32)
    depth[known] = np.float32(1.0) / values[known] if inverse_depth else values[known]
    return depth


def frame_depth_scale(depth: np.ndarray, percentile: float = DEFAULT_SCALE_PERCENTILE
                      ) -> float:
    """The per-frame normalisation scale s: ``percentile`` of the known depths (metres).

    A high percentile rather than the maximum, so that a few far outliers of a SLAM map do
    not squeeze the rest of the frame towards 0. Raises ImageFormatError without known depth.
    """
    values = depth[known_depth(depth)]
    if values.size == 0:
        raise _no_depth()
    return float(np.percentile(values, percentile))


def resample_sparse_depth(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sparse (H, W) metres (NaN unknown) -> (height, width), NaN where no sample lands.

    Each known pixel moves to the output pixel that contains its centre,
    (u + 0.5) * width / W - 0.5 rounded down; where several land on one output pixel the
    nearest wins (a z-buffer, as a sensor would see it). Nothing is interpolated: a
    bilinear or area resize would blend samples with the unknown pixels between them (or
    with each other across a depth edge) into depths that were never measured, and would
    spread a sample over a block of pixels when enlarging.
    """
    depth = np.asarray(depth, dtype=np.float32)
    src_h, src_w = depth.shape
    if (src_h, src_w) == (height, width):
        return np.where(known_depth(depth), depth, np.float32(np.nan)).astype(np.float32)
    v, u = np.nonzero(known_depth(depth))
    z = depth[v, u]
    # (u + 0.5) * width / src_w rounded down, in integers: (2u + 1) * width // (2 src_w).
    tv = ((2 * v + 1) * height) // (2 * src_h)
    tu = ((2 * u + 1) * width) // (2 * src_w)
    # The z-buffer: the smallest depth per output pixel (unbuffered minimum: one pass, no
    # sort by depth).
    out = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(out, tv * width + tu, z)
    out[out == np.inf] = np.nan
    return out.reshape(height, width)


def intensity_from_image(image: np.ndarray, encoding: str) -> np.ndarray:
    """A camera image in any supported colour or mono encoding -> (H, W) uint8 grey."""
    enc = lookup_encoding(encoding)
    if enc.kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding, not an intensity image',
                               'encoding')
    if enc.channels == 1:
        image = image[:, :, 0] if image.ndim == 3 else image
        return (image >> 8).astype(np.uint8) if enc.dtype == np.uint16 else image
    code = cv2.COLOR_BGR2GRAY if encoding.startswith('bgr') else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), code)


def semidense_to_tensor(depth: np.ndarray, spec, intensity: np.ndarray | None = None
                        ) -> tuple[np.ndarray, float]:
    """Semi-dense metres (NaN unknown) [+ (H, W) uint8 intensity] -> the network input.

    Returns the (1, C, h, w) float32 tensor of ``spec`` (channels SEMIDENSE_CHANNELS[:C]:
    depth / s, known mask, intensity / 255) and the frame scale s in metres. The depth is
    moved to the model size with resample_sparse_depth, the intensity with the nodes' area
    resize. Training batches are made with this same function.
    """
    channels = spec.input_channels
    if channels not in (2, 3):
        raise ValueError(f'a semidense model has 2 (depth, mask) or 3 (+ intensity) input '
                         f'channels, this one has {channels}')
    height, width = spec.input_size
    if height and width and depth.shape != (height, width):
        depth = resample_sparse_depth(depth, height, width)
    known = known_depth(depth)
    scale = frame_depth_scale(depth, float(spec.extras.get('scale_percentile',
                                                           DEFAULT_SCALE_PERCENTILE)))
    tensor = np.zeros((1, channels) + depth.shape, dtype=np.float32)
    np.divide(depth, np.float32(scale), out=tensor[0, 0], where=known)
    tensor[0, 1] = known
    if channels == 3:
        _write_intensity(tensor[0, 2], intensity, 'third')
    return tensor, scale


# --- nearest-fill input (models with depth_normalization 'log_geometric_mean') ---------------
#
# Newer models take the classical nearest-neighbour fill as their first guess and predict a
# correction in log depth relative to the frame's geometric mean known depth, all inside the
# graph (training.networks.semidense_net): the input carries metres and the output is
# metres, so doubling every known depth doubles the output.

FILL_CHANNELS = ('nearest_depth', 'mask', 'nearest_distance', 'intensity',
                 'neighbourhood_depth', 'coarse_linear_depth')
COARSE_BLOCK = 4   # pixels: the coarse linear fill triangulates one sample per 4x4 block
# 6-channel models blend the neighbourhood fill (near the samples) into the coarse linear fill
# (far from them) with a = sigmoid((distance - centre) / width), plus what they learnt: half
# and half 10 px from the nearest sample, 12 % / 88 % at 5 / 15 px.
BLEND_CENTRE = 10.0
BLEND_WIDTH = 2.5
JITTER = 1e-3                   # blocks: the triangulated points' deterministic jitter
BARYCENTRIC_TOLERANCE = 1e-2    # a cell this far outside a triangle still counts as inside
FILL_NORMALIZATION = 'log_geometric_mean'


def _no_depth() -> ImageFormatError:
    return ImageFormatError('the semi-dense input has no known depth (all pixels 0, NaN or '
                            'filtered out)', 'no_depth')


def nearest_fill_with_distance(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse (H, W) metres (NaN unknown) -> (every pixel's nearest known depth, its
    distance to that pixel in pixels), both float32.

    OpenCV's distance transform with one label per known pixel (DIST_LABEL_PIXEL: labels
    1..N in raster order of the known pixels; 5x5 mask, Euclidean to within ~2 %).
    Raises ImageFormatError without known depth.
    """
    known = known_depth(depth)
    values = depth[known]
    if values.size == 0:
        raise _no_depth()
    distance, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return values.astype(np.float32)[labels - 1], distance


def neighbourhood_fill(nearest: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The nearest fill smoothed over each pixel's gap: every pixel takes the geometric mean
    of the nearest fill over the square window whose half-size is its distance to the
    nearest known pixel (rounded), so known pixels keep their depth and a pixel r pixels from
    any sample averages the depths of all the samples whose Voronoi cells reach into that
    window, weighted by how much of it they cover.

    A gather form of discrete Sibson (natural-neighbour) interpolation (Park et al., "Discrete
    Sibson interpolation", IEEE TVCG 2006, which scatters over discs instead), on a summed
    area table: O(1) per pixel. The mean is taken in log depth, so the fill scales with the
    depths. (H, W) float32 metres (> 0) and distances in pixels -> (H, W) float32 metres.
    """
    height, width = nearest.shape
    table = cv2.integral(np.log(nearest), sdepth=cv2.CV_64F).ravel()
    half = np.rint(distance).astype(np.int32)
    rows = np.arange(height, dtype=np.int32)[:, None]
    cols = np.arange(width, dtype=np.int32)[None, :]
    top, bottom = np.maximum(rows - half, 0), np.minimum(rows + half + 1, height)
    left, right = np.maximum(cols - half, 0), np.minimum(cols + half + 1, width)
    top_row, bottom_row = top * (width + 1), bottom * (width + 1)
    window_sum = (table[bottom_row + right] - table[top_row + right]
                  - table[bottom_row + left] + table[top_row + left])
    return np.exp(window_sum / ((bottom - top) * (right - left))).astype(np.float32)


def _linear_on_grid(points: np.ndarray, values: np.ndarray, rows: int, cols: int
                    ) -> np.ndarray:
    """Piecewise-linear interpolation of ``values`` at integer ``points`` (N, 2: row, col) over
    their Delaunay triangulation, evaluated at every cell of a rows x cols grid (NaN outside
    the convex hull). The triangles are rasterised in batches of similar size with their
    barycentric coordinates (scipy's point location is orders of magnitude slower on grid
    points, which sit exactly on vertices and edges).
    """
    from scipy.spatial import Delaunay, QhullError
    out = np.full((rows, cols), np.nan)
    # A deterministic sub-pixel jitter: exact grid points are degenerate for qhull (four
    # points on every circle), which makes it several times slower.
    jitter = (np.random.default_rng(0).random(points.shape) - 0.5) * JITTER
    try:
        triangulation = Delaunay(points + jitter)
    except QhullError:   # collinear or too few distinct points
        return out
    simplices = triangulation.simplices
    corners = points[simplices].astype(np.float64)                        # (S, 3, 2)
    # Barycentric coordinates (b1, b2) = M^-1 (x - c), M = [a - c, b - c] (scipy's own
    # Delaunay.transform computes the same, much more slowly).
    m = np.stack([corners[:, 0] - corners[:, 2], corners[:, 1] - corners[:, 2]], axis=-1)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    flat = np.abs(det) < 1e-9
    det[flat] = 1.0
    inverse = np.stack([np.stack([m[:, 1, 1], -m[:, 0, 1]], -1),
                        np.stack([-m[:, 1, 0], m[:, 0, 0]], -1)], axis=1) / det[:, None, None]
    low = np.clip(np.floor(corners.min(1)), 0, None).astype(np.int64)
    high = np.minimum(np.ceil(corners.max(1)), [rows - 1, cols - 1]).astype(np.int64)
    # batches of bounding boxes up to the same power of two high and wide
    bucket = 2 ** np.ceil(np.log2(high - low + 1)).astype(np.int64)          # (S, 2)
    # A triangle inside a 2x2 box has no cell but its own three corners, which are known.
    key = np.where((bucket.max(1) > 2) & ~flat, bucket[:, 0] * 4096 + bucket[:, 1], 0)
    for code in np.unique(key[key > 0]):
        batch = np.nonzero(key == code)[0]
        tall, wide = bucket[batch[0]]
        cell_v = low[batch, 0, None] + np.repeat(np.arange(tall), wide)[None]   # (n, k)
        cell_u = low[batch, 1, None] + np.tile(np.arange(wide), tall)[None]
        t, r = inverse[batch], corners[batch, 2]
        dv, du = cell_v - r[:, 0, None], cell_u - r[:, 1, None]
        b1 = t[:, 0, 0, None] * dv + t[:, 0, 1, None] * du
        b2 = t[:, 1, 0, None] * dv + t[:, 1, 1, None] * du
        b3 = 1.0 - b1 - b2
        inside = (b1 >= -BARYCENTRIC_TOLERANCE) & (b2 >= -BARYCENTRIC_TOLERANCE) & \
            (b3 >= -BARYCENTRIC_TOLERANCE) & (cell_v < rows) & (cell_u < cols)
        corner_values = values[simplices[batch]]                           # (n, 3)
        interpolated = (b1 * corner_values[:, 0, None] + b2 * corner_values[:, 1, None]
                        + b3 * corner_values[:, 2, None])
        out[cell_v[inside], cell_u[inside]] = interpolated[inside]
    return out


def coarse_linear_fill(depth: np.ndarray, block: int = COARSE_BLOCK) -> np.ndarray:
    """Piecewise-linear interpolation of log depth on a grid ``block`` times coarser: the
    known log depths are averaged per block; a free block next to known ones takes their
    mean, free blocks further out are interpolated in the Delaunay triangles of the known
    blocks around them (_linear_on_grid), blocks outside those triangles take the nearest
    block that has a value, and the coarse map is resized back bilinearly. Far from the
    samples this is the
    linear interpolation across a gap, at a fraction of its cost at full resolution (the
    triangulation has at most one vertex per block); near them the fine fills are better.
    (H, W) metres (NaN unknown) -> (H, W) float32 metres (sizes that are not multiples of
    ``block``: the last partial block is left out of the grid, which is stretched over it).
    """
    from scipy import ndimage
    height, width = depth.shape
    rows, cols = max(height // block, 1), max(width // block, 1)
    known = known_depth(depth)[:rows * block, :cols * block]
    log_depth = np.log(np.where(known, depth[:rows * block, :cols * block], 1.0))
    sums = np.where(known, log_depth, 0.0).reshape(rows, block, cols, block).sum((1, 3))
    counts = known.reshape(rows, block, cols, block).sum((1, 3))
    occupied = counts > 0
    if not occupied.any():
        raise _no_depth()
    means = np.zeros((rows, cols))
    means[occupied] = sums[occupied] / counts[occupied]
    coarse = np.where(occupied, means, np.nan)
    # A free block next to known ones takes the mean of its known 8-neighbours; blocks
    # further out are interpolated in the triangles of the known blocks around them (the
    # only ones triangulated: a dense input needs no triangulation at all).
    kernel = np.ones((3, 3), np.float32)
    weight = cv2.filter2D(occupied.astype(np.float32), -1, kernel,
                          borderType=cv2.BORDER_CONSTANT)
    total = cv2.filter2D(np.where(occupied, means, 0.0).astype(np.float32), -1, kernel,
                         borderType=cv2.BORDER_CONSTANT)
    edge = ~occupied & (weight > 0)
    coarse[edge] = total[edge] / weight[edge]
    far = ~occupied & (weight == 0)
    if far.any():
        around = occupied & cv2.dilate(far.astype(np.uint8), np.ones((5, 5), np.uint8),
                                       borderType=cv2.BORDER_CONSTANT).astype(bool)
        v, u = np.nonzero(around)
        if v.size >= 3:
            linear = _linear_on_grid(np.column_stack([v, u]), means[v, u], rows, cols)
            coarse[far] = linear[far]
    # Outside the triangulation: the nearest block that has a value (the hull's edge).
    outside = ~np.isfinite(coarse)
    if outside.any():
        _, (near_v, near_u) = ndimage.distance_transform_edt(outside, return_indices=True)
        coarse = coarse[near_v, near_u]
    fine = cv2.resize(coarse.astype(np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)
    return np.exp(fine)


def blend_weight(distance: np.ndarray) -> np.ndarray:
    """a = sigmoid((distance - BLEND_CENTRE) / BLEND_WIDTH): the coarse linear fill's share."""
    return (1.0 / (1.0 + np.exp(-(distance - BLEND_CENTRE) / BLEND_WIDTH))).astype(np.float32)


def semidense_fill_tensor(depth: np.ndarray, spec, intensity: np.ndarray | None = None
                          ) -> np.ndarray:
    """Semi-dense metres (NaN unknown) [+ (H, W) uint8 intensity] -> the (1, C, h, w)
    float32 input of a 'log_geometric_mean' model: FILL_CHANNELS[:C] = nearest known depth
    (metres), known mask, distance to the nearest known pixel (pixels of the model grid),
    intensity / 255, the neighbourhood fill and the coarse linear fill (metres). The depth
    is moved to the model size with resample_sparse_depth first. Training batches are made
    with this same function.
    """
    channels = spec.input_channels
    if channels not in (3, 4, 6):
        raise ValueError(f'a nearest-fill semidense model has 3 (nearest depth, mask, '
                         f'distance), 4 (+ intensity) or 6 (+ neighbourhood and coarse '
                         f'linear fills) input channels, this one has {channels}')
    height, width = spec.input_size
    if height and width and depth.shape != (height, width):
        depth = resample_sparse_depth(depth, height, width)
    nearest, distance = nearest_fill_with_distance(depth)
    tensor = np.empty((1, channels) + depth.shape, dtype=np.float32)
    tensor[0, 0] = nearest
    tensor[0, 1] = known_depth(depth)
    tensor[0, 2] = distance
    if channels >= 4:
        _write_intensity(tensor[0, 3], intensity, 'fourth')
    if channels == 6:
        tensor[0, 4] = neighbourhood_fill(nearest, distance)
        tensor[0, 5] = coarse_linear_fill(depth)
    return tensor


def _write_intensity(channel: np.ndarray, intensity: np.ndarray | None, which: str) -> None:
    """The intensity image, in [0, 1] at the channel's size, into the input channel."""
    if intensity is None:
        raise ImageFormatError(f'this model needs the intensity image as its {which} input '
                               'channel', 'missing_image')
    if intensity.ndim != 2 or intensity.dtype != np.uint8:
        raise ValueError(f'intensity must be (H, W) uint8, got {intensity.shape} '
                         f'{intensity.dtype}')
    if intensity.shape != channel.shape:
        intensity = resize_image(intensity, *channel.shape)[:, :, 0]
    np.multiply(intensity, np.float32(1.0 / 255.0), out=channel, casting='unsafe')


# Pixels: a tile's border this wide is left to its neighbour (the shipped network's receptive
# field is 131 px: 65 each side).
TILE_MARGIN = 64


def tile_starts(length: int, tile: int, margin: int = TILE_MARGIN) -> list[int]:
    """The starts of the fewest windows of ``tile`` pixels that cover ``length`` pixels
    (``length >= tile``) and overlap by at least ``2 margin``, spread evenly from 0 to
    ``length - tile``."""
    if tile <= 2 * margin:
        raise ValueError(f'a tile of {tile} px cannot keep a margin of {margin} px each side')
    if length < tile:
        raise ValueError(f'{length} px is shorter than one tile of {tile} px')
    count = 1 + -(-(length - tile) // (tile - 2 * margin))     # ceil
    if count == 1:
        return [0]
    step = (length - tile) / (count - 1)
    return [int(round(i * step)) for i in range(count)]


def tile_cuts(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part [a, b) of the image each tile writes: the overlap of neighbouring tiles is
    cut in its middle, so every pixel comes from the tile it lies deepest inside."""
    edges = [0] + [(starts[i] + tile + starts[i + 1]) // 2 for i in range(len(starts) - 1)]
    return list(zip(edges, edges[1:] + [length]))


def merge_known_depth(dense: np.ndarray, sparse: np.ndarray,
                      depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """``dense`` with every known pixel of ``sparse`` (same size) put back exactly.

    With ``depth_range``, only samples inside it are kept (outside stays as the network
    said, itself NaN outside the range). Unknown samples never overwrite anything.
    """
    if dense.shape != sparse.shape:
        raise ValueError(f'dense {dense.shape} and sparse {sparse.shape} depth differ in size')
    keep = known_depth(sparse)
    if depth_range is not None:
        with np.errstate(invalid='ignore'):
            keep &= (sparse >= depth_range[0]) & (sparse <= depth_range[1])
    out = dense.copy()
    out[keep] = sparse[keep]
    return out


# --- point clouds (SLAM map points, LiDAR) -> sparse depth -----------------------------------

def rotation_from_quaternion(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    """3x3 rotation matrix of a (normalised here) quaternion (x, y, z, w), ROS order."""
    q = np.array([qx, qy, qz, qw], dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f'quaternion {q.tolist()} has no rotation (zero or non-finite norm)')
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def transform_points(points: np.ndarray, transform: tuple[float, ...]) -> np.ndarray:
    """(N, 3) points -> the camera optical frame: p_cam = R p + t.

    ``transform`` is (tx, ty, tz, qx, qy, qz, qw): the pose of the points' frame in the
    camera's optical frame (what `tf2_echo camera_optical_frame <cloud frame>` prints).
    """
    if len(transform) != 7:
        raise ValueError(f'a transform is 7 numbers (tx, ty, tz, qx, qy, qz, qw), got '
                         f'{len(transform)}')
    rotation = rotation_from_quaternion(*transform[3:])
    translation = np.asarray(transform[:3], dtype=np.float64)
    if np.allclose(rotation, np.eye(3)) and not translation.any():
        return np.asarray(points, dtype=np.float32)
    return (np.asarray(points, dtype=np.float64) @ rotation.T + translation).astype(np.float32)


def points_to_sparse_depth(points: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """(N, 3) optical-frame points -> (H, W) metres of the camera, NaN where none projects
    (nearest point per pixel; points behind the camera or outside the image are dropped)."""
    return rasterize_depth(*project_points(points, camera), camera)
