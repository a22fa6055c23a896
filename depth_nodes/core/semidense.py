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

import functools
from concurrent.futures import ThreadPoolExecutor

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
                 'neighbourhood_depth', 'linear_depth')
# 6-channel models blend the neighbourhood fill (near the samples) into the linear fill
# (far from them) with a = sigmoid((distance - centre) / width), plus what they learnt: half
# and half 10 px from the nearest sample, 12 % / 88 % at 5 / 15 px.
BLEND_CENTRE = 10.0
BLEND_WIDTH = 2.5
FILL_NORMALIZATION = 'log_geometric_mean'


def _no_depth() -> ImageFormatError:
    return ImageFormatError('the semi-dense input has no known depth (all pixels 0, NaN or '
                            'filtered out)', 'no_depth')


def nearest_fill_with_distance(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sparse (H, W) metres (NaN unknown) -> (every pixel's nearest known depth, its
    distance to that pixel in pixels), both float32.

    OpenCV's distance transform with one label per known pixel (DIST_LABEL_PIXEL; 5x5 mask,
    Euclidean to within ~2 %). Raises ImageFormatError without known depth.
    """
    nearest, distance, _ = _nearest_fill(depth)
    return nearest, distance


def _nearest_fill(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nearest_fill_with_distance, plus each pixel's nearest known pixel as an (H, W) int32
    index into the known pixels in raster order (np.nonzero(known_depth(depth))): the
    discrete Voronoi diagram of the known pixels, which linear_fill triangulates."""
    known = known_depth(depth)
    values = depth[known]
    if values.size == 0:
        raise _no_depth()
    distance, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    labels -= 1                          # OpenCV labels the known pixels 1..N, raster order
    return values.astype(np.float32)[labels], distance, labels


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
    table = cv2.integral(np.log(nearest), sdepth=cv2.CV_64F)
    return _window_mean_exp()(table, np.rint(distance).astype(np.int32))


def _window_mean_exp_kernel(table: np.ndarray, half: np.ndarray) -> np.ndarray:
    """exp of the mean over the square window of half-size ``half`` (clipped to the image)
    around every pixel, from the summed-area table (H + 1, W + 1) of the values; (H, W)
    float32. Compiled by numba (_window_mean_exp): a vectorised NumPy version took several
    times as long."""
    height, width = half.shape
    out = np.empty((height, width), np.float32)
    for row in range(height):
        for col in range(width):
            h = half[row, col]
            top, bottom = max(row - h, 0), min(row + h + 1, height)
            left, right = max(col - h, 0), min(col + h + 1, width)
            total = (table[bottom, right] - table[top, right] - table[bottom, left]
                     + table[top, left])
            out[row, col] = np.exp(total / ((bottom - top) * (right - left)))
    return out


def _voronoi_dual_kernel(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray
                         ) -> np.ndarray:
    """The triangles dual to the discrete Voronoi diagram ``labels`` (each pixel's nearest
    known pixel, an index into ``rows``/``cols``): wherever three cells meet in a 2x2 block of
    pixels, their points form a triangle; where four meet, two, split along the shorter
    diagonal. (T, 3) int32 indices. A Voronoi vertex is the centre of an empty circle through
    its cells' points, so these are the Delaunay triangles whose circumcentre lies in the
    image (to within the transform's accuracy); compiled by numba (_voronoi_dual).
    """
    height, width = labels.shape
    out = np.empty((max(16, (height - 1) * (width - 1) // 4), 3), np.int32)
    count = 0
    for row in range(height - 1):
        for col in range(width - 1):
            # the block's cells in cyclic order: top left, top right, bottom right, bottom left
            a = labels[row, col]
            b = labels[row, col + 1]
            c = labels[row + 1, col + 1]
            d = labels[row + 1, col]
            if count + 2 > out.shape[0]:
                grown = np.empty((2 * out.shape[0], 3), np.int32)
                grown[:count] = out[:count]
                out = grown
            if a == b:                          # 3 cells when the other two differ
                if c == d or c == a or d == a:
                    continue
                out[count, 0], out[count, 1], out[count, 2] = a, c, d
            elif b == c:
                if d == a or d == b:
                    continue
                out[count, 0], out[count, 1], out[count, 2] = a, b, d
            elif c == d or d == a:
                if c == d and d == a:
                    continue
                out[count, 0], out[count, 1], out[count, 2] = a, b, c
            elif a == c or b == d:              # a cell touching itself across the corner
                continue
            else:                               # four cells: two triangles
                ac = (rows[a] - rows[c]) ** 2 + (cols[a] - cols[c]) ** 2
                bd = (rows[b] - rows[d]) ** 2 + (cols[b] - cols[d]) ** 2
                if ac <= bd:
                    out[count, 0], out[count, 1], out[count, 2] = a, b, c
                    count += 1
                    out[count, 0], out[count, 1], out[count, 2] = a, c, d
                else:
                    out[count, 0], out[count, 1], out[count, 2] = a, b, d
                    count += 1
                    out[count, 0], out[count, 1], out[count, 2] = b, c, d
            count += 1
    return out[:count]


def _gap_triangles(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   uncovered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Delaunay triangles where the Voronoi dual left pixels uncovered: an exact
    triangulation (Subdiv2D) of the samples whose cells hold such a pixel or reach the image
    border. A Delaunay triangle the dual misses has its circumcentre outside the image (the
    slivers along the convex hull: its three cells cross the border) or among Voronoi
    vertices closer together than a pixel (samples on a circle around a textureless region:
    their cells meet in the uncovered pixels); either way its corners are among these
    samples and its circumcircle holds none of them, so it is one of their Delaunay
    triangles too. (corner rows, corner cols), each (T, 3) int32; the caller uses them only
    where the dual left a gap, as they need not be Delaunay elsewhere.
    """
    chosen = np.zeros(rows.size, bool)
    chosen[labels[uncovered]] = True
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        chosen[edge] = True
    index = np.flatnonzero(chosen)
    return delaunay_triangles(rows[index], cols[index], labels.shape)


# Subdiv2D's rectangle reaches this many image sizes beyond the image (delaunay_triangles).
SUBDIV_MARGIN = 64


def _z_order(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The permutation that sorts pixels along the Morton (Z-order) curve (up to 65535 px a
    side): Subdiv2D finds each new point by walking from the last one, so inserting close
    points one after another halves the triangulation time against raster order."""
    def spread(value: np.ndarray) -> np.ndarray:
        value = value.astype(np.uint32) & 0xFFFF
        value = (value | (value << 8)) & 0x00FF00FF
        value = (value | (value << 4)) & 0x0F0F0F0F
        value = (value | (value << 2)) & 0x33333333
        return (value | (value << 1)) & 0x55555555
    return np.argsort(spread(rows) | (spread(cols) << 1), kind='stable')


def delaunay_triangles(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The Delaunay triangles of integer pixels (rows, cols) of an image of ``shape``:
    (corner rows, corner cols), each (T, 3) int32. OpenCV's incremental Subdiv2D, points
    inserted in Z-order: much faster than qhull on pixel grids, whose points are degenerate
    (four on every circle). Subdiv2D starts from three virtual vertices a few times its
    rectangle's size away and drops the triangles whose circumcircle holds one of them:
    its rectangle is made far larger than the image so that the long slivers along the
    convex hull, whose circumcircles are huge, are kept."""
    height, width = shape
    order = _z_order(rows, cols)
    margin = SUBDIV_MARGIN * max(height, width)
    subdivision = cv2.Subdiv2D((-margin, -margin, width + 2 * margin, height + 2 * margin))
    subdivision.insert(np.column_stack([cols[order], rows[order]]).astype(np.float32))
    # (T, 6): x, y of the three corners (an empty tuple when there is no triangle)
    corners = np.asarray(subdivision.getTriangleList(), np.float32).reshape(-1, 6)
    corner_cols, corner_rows = corners[:, 0::2], corners[:, 1::2]
    # Triangles that touch Subdiv2D's three virtual outer vertices are not the points'.
    inside = ((corner_rows >= 0) & (corner_rows < height) & (corner_cols >= 0)
              & (corner_cols < width)).all(1)
    return corner_rows[inside].astype(np.int32), corner_cols[inside].astype(np.int32)


def _rasterise_planes_kernel(corner_rows: np.ndarray, corner_cols: np.ndarray,
                             log_depth: np.ndarray) -> np.ndarray:
    """Each triangle's plane through the log depths at its corners, evaluated at every pixel
    whose centre lies in it (on an edge: in it); NaN where no triangle covers a pixel.
    Corners (T, 3) int rows and cols, log_depth (H, W) -> (H, W) float32. Scanline
    rasterisation; compiled by numba (_rasterise_planes), which runs it without the GIL.
    """
    height, width = log_depth.shape
    out = np.full((height, width), np.nan, np.float32)
    for t in range(corner_rows.shape[0]):
        rows = (corner_rows[t, 0], corner_rows[t, 1], corner_rows[t, 2])
        cols = (corner_cols[t, 0], corner_cols[t, 1], corner_cols[t, 2])
        a, b, c = 0, 1, 2                                 # corners sorted by row: a, b, c
        if rows[b] < rows[a]:
            a, b = b, a
        if rows[c] < rows[b]:
            b, c = c, b
            if rows[b] < rows[a]:
                a, b = b, a
        ya, yb, yc = rows[a], rows[b], rows[c]
        xa, xb, xc = cols[a], cols[b], cols[c]
        # A triangle inside a 2x2 box covers no pixel but its corners, which are known.
        if max(xa, xb, xc) - min(xa, xb, xc) < 2 and yc - ya < 2:
            continue
        det = (yb - ya) * (xc - xa) - (yc - ya) * (xb - xa)
        if det == 0:                                      # collinear: no area
            continue
        za = np.float64(log_depth[ya, xa])
        zb = np.float64(log_depth[yb, xb])
        zc = np.float64(log_depth[yc, xc])
        # The plane (Cramer's rule on the edges a-b, a-c): log d = z_a + p_row (row - y_a)
        # + p_col (col - x_a).
        p_row = ((zb - za) * (xc - xa) - (zc - za) * (xb - xa)) / det
        p_col = ((yb - ya) * (zc - za) - (yc - ya) * (zb - za)) / det
        long_slope = (xc - xa) / (yc - ya)                # yc > ya: det != 0
        # Rows ya .. yb - 1 lie between the long edge a-c and the edge a-b, rows yb .. yc
        # between a-c and b-c (a flat lower half, yb == yc, is the single row from b to c).
        for row in range(ya, yc + 1):
            long_x = xa + long_slope * (row - ya)
            if row < yb:
                short_x = xa + (xb - xa) / (yb - ya) * (row - ya)
            elif yc > yb:
                short_x = xb + (xc - xb) / (yc - yb) * (row - yb)
            else:
                short_x = np.float64(xb)
            left = int(np.ceil(min(long_x, short_x) - 1e-9))
            right = int(np.floor(max(long_x, short_x) + 1e-9))
            # relative to corner a: exact for slivers, whose slopes are large
            start = za + p_row * (row - ya)
            for col in range(max(left, 0), min(right, width - 1) + 1):
                out[row, col] = start + p_col * (col - xa)
    return out


def _nearest_covered_kernel(covered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's nearest covered pixel (exact Euclidean distance: Felzenszwalb and
    Huttenlocher's lower envelope of parabolas, down the columns then along the rows), as
    (H, W) int32 rows and cols; needs a covered pixel. scipy.ndimage.distance_transform_edt
    with return_indices does the same, several times slower (ties may resolve differently).
    """
    height, width = covered.shape
    far = np.float64(4.0 * (height + width) ** 2)       # beyond any squared distance here
    column_distance = np.empty((height, width), np.float64)
    column_nearest = np.empty((height, width), np.int32)
    for col in range(width):                            # nearest covered pixel in the column
        last = -1
        for row in range(height):
            if covered[row, col]:
                last = row
            column_nearest[row, col] = last
        last = -1
        for row in range(height - 1, -1, -1):
            if covered[row, col]:
                last = row
            if last >= 0 and (column_nearest[row, col] < 0
                              or last - row < row - column_nearest[row, col]):
                column_nearest[row, col] = last
            nearest = column_nearest[row, col]
            column_distance[row, col] = far if nearest < 0 else np.float64(
                (row - nearest) ** 2)
    near_rows = np.empty((height, width), np.int32)
    near_cols = np.empty((height, width), np.int32)
    apex = np.empty(width, np.int64)                    # the envelope's parabolas ...
    bound = np.empty(width + 1, np.float64)             # ... and where each takes over
    for row in range(height):
        f = column_distance[row]
        k = 0
        apex[0] = 0
        bound[0], bound[1] = -np.inf, np.inf
        for q in range(1, width):
            while True:
                v = apex[k]
                s = ((f[q] + q * q) - (f[v] + v * v)) / (2.0 * (q - v))
                if s <= bound[k]:
                    k -= 1
                else:
                    break
            k += 1
            apex[k] = q
            bound[k], bound[k + 1] = s, np.inf
        k = 0
        for q in range(width):
            while bound[k + 1] < q:
                k += 1
            near_cols[row, q] = apex[k]
            near_rows[row, q] = column_nearest[row, apex[k]]
    return near_rows, near_cols


@functools.cache
def _rasterise_planes():
    """_rasterise_planes_kernel compiled (numba, on first use; cached on disk), without the
    GIL so that it runs beside the other fills. A vectorised NumPy version of it took 15 times
    as long."""
    import numba
    return numba.njit(cache=True, nogil=True)(_rasterise_planes_kernel)


@functools.cache
def _window_mean_exp():
    import numba
    return numba.njit(cache=True, nogil=True)(_window_mean_exp_kernel)


@functools.cache
def _voronoi_dual():
    import numba
    return numba.njit(cache=True, nogil=True)(_voronoi_dual_kernel)


@functools.cache
def _nearest_covered():
    import numba
    return numba.njit(cache=True, nogil=True)(_nearest_covered_kernel)


def prepare_fills() -> None:
    """Compile (or load from numba's disk cache) the fills' kernels now, so that a node's
    first frame does not wait for them (compiling takes seconds; loading them from the cache,
    numba's import included, a fraction of that)."""
    depth = np.full((4, 4), np.nan, np.float32)
    depth[0, 0] = depth[0, 3] = depth[3, 0] = 1.0
    nearest, distance, labels = _nearest_fill(depth)
    neighbourhood_fill(nearest, distance)
    linear_fill(depth, labels)


def linear_fill(depth: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Piecewise-linear interpolation of log depth over the Delaunay triangles of the known
    pixels, at every pixel; outside them each pixel takes the nearest interpolated one
    (exact Euclidean distance; OpenCV's labelled distance transform is approximate, and its
    ties streak along the hull: measurably worse). Known pixels keep their depth. Linear in
    log depth, so the fill scales with the depths (and follows a slanted plane's 1/depth
    more closely than linear metres). (H, W) metres (NaN unknown) -> (H, W) float32 metres.
    Raises ImageFormatError without known depth.

    The triangles come from the discrete Voronoi diagram of the known pixels (``labels``, as
    _nearest_fill gives it; computed here when not given), O(pixels), and where that leaves
    gaps from an exact triangulation of the few samples around them (_gap_triangles): the
    same fill as triangulating every known pixel (Subdiv2D, several times slower) but where
    near-cocircular samples are split along the other diagonal.
    """
    known = known_depth(depth)
    if not known.any():
        raise _no_depth()
    if labels is None:
        labels = _nearest_fill(depth)[2]
    rows, cols = (index.astype(np.int32) for index in np.nonzero(known))
    dual = _voronoi_dual()(labels, rows, cols)
    log_depth = np.log(np.where(known, depth, 1.0)).astype(np.float32)
    fill = log_depth.copy()
    np.copyto(fill, _rasterise_planes()(rows[dual], cols[dual], log_depth), where=~known)
    uncovered = ~np.isfinite(fill)
    if uncovered.any():
        gap_rows, gap_cols = _gap_triangles(labels, rows, cols, uncovered)
        if len(gap_rows):
            np.copyto(fill, _rasterise_planes()(gap_rows, gap_cols, log_depth),
                      where=uncovered)
        covered = np.isfinite(fill)
        if not covered.all():   # outside the hull (or fewer than three points, or a line)
            near_rows, near_cols = _nearest_covered()(covered)
            fill = fill[near_rows, near_cols]
    return np.exp(fill)


def blend_weight(distance: np.ndarray) -> np.ndarray:
    """a = sigmoid((distance - BLEND_CENTRE) / BLEND_WIDTH): the linear fill's share."""
    return (1.0 / (1.0 + np.exp(-(distance - BLEND_CENTRE) / BLEND_WIDTH))).astype(np.float32)


def semidense_fill_tensor(depth: np.ndarray, spec, intensity: np.ndarray | None = None,
                          background: bool = True) -> np.ndarray:
    """Semi-dense metres (NaN unknown) [+ (H, W) uint8 intensity] -> the (1, C, h, w)
    float32 input of a 'log_geometric_mean' model: FILL_CHANNELS[:C] = nearest known depth
    (metres), known mask, distance to the nearest known pixel (pixels of the model grid),
    intensity / 255, the neighbourhood fill and the linear fill (metres). The depth
    is moved to the model size with resample_sparse_depth first. Training batches are made
    with this same function. ``background``: compute the linear fill on a second thread
    while the neighbourhood fill is computed (False: one after the other, for comparison).
    """
    channels = spec.input_channels
    if channels not in (3, 4, 6):
        raise ValueError(f'a nearest-fill semidense model has 3 (nearest depth, mask, '
                         f'distance), 4 (+ intensity) or 6 (+ neighbourhood and linear '
                         f'fills) input channels, this one has {channels}')
    height, width = spec.input_size
    if height and width and depth.shape != (height, width):
        depth = resample_sparse_depth(depth, height, width)
    known = known_depth(depth)
    nearest, distance, labels = _nearest_fill(depth)
    linear = None
    if channels == 6 and background:
        # The linear fill (its kernels run without the GIL: numba and OpenCV) runs on
        # another core while the neighbourhood fill runs here.
        linear = _background().submit(linear_fill, depth, labels)
    try:
        tensor = np.empty((1, channels) + depth.shape, dtype=np.float32)
        tensor[0, 0] = nearest
        tensor[0, 1] = known
        tensor[0, 2] = distance
        if channels >= 4:
            _write_intensity(tensor[0, 3], intensity, 'fourth')
        if channels == 6:
            tensor[0, 4] = neighbourhood_fill(nearest, distance)
            tensor[0, 5] = (linear.result() if linear is not None
                            else linear_fill(depth, labels))
    finally:
        if linear is not None:
            linear.cancel()
    return tensor


@functools.cache
def _background() -> ThreadPoolExecutor:
    """One worker thread for the fills' background work, started on first use."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix='semidense_fill')


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
