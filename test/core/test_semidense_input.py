"""core.semidense, the node side: (inverse) depth + variance -> metres, sparse resampling,
network input channels, point projection, keeping known depth; unknown never reads as 0."""
import cv2
import numpy as np
import pytest

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.semidense import (_nearest_covered, _rasterise_planes,
                                        delaunay_triangles,
                                        depth_from_semidense_image, linear_fill,
                                        semidense_fill_tensor,
                                        frame_depth_scale,
                                        intensity_from_image, merge_known_depth,
                                        nearest_fill_with_distance, neighbourhood_fill,
                                        points_to_sparse_depth, resample_sparse_depth,
                                        rotation_from_quaternion, semidense_to_tensor,
                                        transform_points)

NAN, INF = np.nan, np.inf


def spec(height=0, width=0, channels=2, percentile=100.0):
    return ModelSpec(method='semidense', input_kind='semidense', input_names=('semidense',),
                     input_height=height, input_width=width, input_channels=channels,
                     mean=(0.0,) * channels, std=(1.0,) * channels,
                     extras={'scale_percentile': percentile})


def test_depth_and_inverse_depth_with_every_unknown_marker():
    values = np.array([[2.0, 0.0, NAN], [-1.0, INF, 0.5]], np.float32)
    depth = depth_from_semidense_image(values)
    assert np.array_equal(np.isnan(depth), [[False, True, True], [True, True, False]])
    assert depth[0, 0] == 2.0 and depth[1, 2] == 0.5
    inverse = depth_from_semidense_image(values, inverse_depth=True)
    assert inverse[0, 0] == 0.5 and inverse[1, 2] == 2.0          # 1 / idepth
    assert np.isnan(inverse[0, 1]) and np.isnan(inverse[1, 1])    # idepth 0, inf: unknown


def test_variance_filter_keeps_only_confident_pixels():
    idepth = np.array([[1.0, 0.5, 0.25, 2.0]], np.float32)
    variance = np.array([[0.01, 0.2, NAN, 0.05]], np.float32)
    depth = depth_from_semidense_image(idepth, inverse_depth=True, variance=variance,
                                       max_variance=0.1)
    assert np.allclose(depth, [[1.0, NAN, NAN, 0.5]], equal_nan=True)
    unfiltered = depth_from_semidense_image(idepth, inverse_depth=True, variance=variance)
    assert np.isfinite(unfiltered).all()                         # max_variance 0: no filter
    with pytest.raises(ImageFormatError, match='does not match') as err:
        depth_from_semidense_image(idepth, variance=np.zeros((2, 4), np.float32))
    assert err.value.kind == 'size_mismatch'


def test_unknown_pixels_never_read_as_zero_depth():
    # 0, NaN, Inf and negative inputs must all become mask 0; every mask-1 pixel carries a
    # positive normalised depth, so the network can never mistake a hole for "0 m".
    values = np.array([[0.0, NAN, INF, -3.0],
                       [4.0, 2.0, 1.0, 8.0]], np.float32)
    tensor, scale = semidense_to_tensor(depth_from_semidense_image(values), spec())
    depth_channel, mask = tensor[0, 0], tensor[0, 1]
    assert scale == 8.0                                         # percentile 100 = max
    assert mask.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert depth_channel.tolist() == [[0, 0, 0, 0], [0.5, 0.25, 0.125, 1.0]]
    assert np.all(depth_channel[mask == 1] > 0)
    with pytest.raises(ImageFormatError) as err:
        semidense_to_tensor(np.full((2, 4), NAN, np.float32), spec())
    assert err.value.kind == 'no_depth'


def test_frame_scale_is_a_percentile_of_known_depths():
    depth = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, NAN]], np.float32)
    assert frame_depth_scale(depth, 50.0) == 3.0
    assert frame_depth_scale(depth, 100.0) == 5.0
    # The same scene at any scale gives the same network input (monocular SLAM maps).
    a, _ = semidense_to_tensor(depth, spec(percentile=95.0))
    b, s = semidense_to_tensor(depth * 7.0, spec(percentile=95.0))
    assert np.allclose(a, b) and s == pytest.approx(7.0 * frame_depth_scale(depth, 95.0))


def test_sparse_resampling_moves_samples_without_blurring_them():
    depth = np.full((4, 6), NAN, np.float32)
    depth[0, 0], depth[0, 1], depth[3, 5] = 2.0, 1.5, 9.0
    down = resample_sparse_depth(depth, 2, 3)
    # (0,0) and (0,1) both land in output (0,0): the nearest (1.5 m) wins, never an average;
    # (3,5) lands in (1,2); everything else stays unknown.
    assert np.allclose(down, [[1.5, NAN, NAN], [NAN, NAN, 9.0]], equal_nan=True)
    up = resample_sparse_depth(depth, 8, 12)
    assert np.count_nonzero(np.isfinite(up)) == 3              # no sample spread to a block
    # Source centre (u + 0.5) * 2 = 1.0 -> output pixel 1 (the one whose span [1, 2) holds it).
    assert up[1, 1] == 2.0 and up[1, 3] == 1.5 and up[7, 11] == 9.0
    same = resample_sparse_depth(np.array([[0.0, 2.0]], np.float32), 1, 2)
    assert np.isnan(same[0, 0]) and same[0, 1] == 2.0


def test_tensor_at_model_size_with_intensity_channel():
    depth = np.full((8, 8), NAN, np.float32)
    depth[::2, ::2] = 4.0
    gray = np.full((8, 8), 51, np.uint8)
    tensor, scale = semidense_to_tensor(depth, spec(4, 4, channels=3), gray)
    assert tensor.shape == (1, 3, 4, 4) and scale == 4.0
    assert tensor[0, 1].all() and np.allclose(tensor[0, 0], 1.0)
    assert np.allclose(tensor[0, 2], 0.2)                       # 51 / 255
    with pytest.raises(ImageFormatError, match='intensity') as err:
        semidense_to_tensor(depth, spec(4, 4, channels=3))
    assert err.value.kind == 'missing_image'


def test_intensity_from_any_image_encoding():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255                                           # pure red
    assert intensity_from_image(rgb, 'rgb8')[0, 0] == 76        # 0.299 * 255
    assert intensity_from_image(rgb[..., ::-1].copy(), 'bgr8')[0, 0] == 76
    assert intensity_from_image(np.full((2, 2), 0x1234, np.uint16), 'mono16')[0, 0] == 0x12
    with pytest.raises(ImageFormatError):
        intensity_from_image(np.zeros((2, 2), np.float32), '32FC1')


def test_keep_input_depth_puts_known_samples_back_exactly():
    dense = np.array([[1.0, 2.0, 3.0]], np.float32)
    sparse = np.array([[NAN, 2.5, 50.0]], np.float32)
    assert merge_known_depth(dense, sparse).tolist() == [[1.0, 2.5, 50.0]]
    assert merge_known_depth(dense, sparse, (0.1, 10.0)).tolist() == [[1.0, 2.5, 3.0]]
    assert merge_known_depth(dense, np.zeros_like(dense)).tolist() == dense.tolist()


def test_points_project_with_a_fixed_extrinsic():
    camera = CameraIntrinsics(8, 6, fx=4.0, fy=4.0, cx=3.5, cy=2.5)
    # A point 2 m ahead on the optical axis, one behind it, one behind the camera.
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 3.0], [0.0, 0.0, -1.0],
                       [1.0, 0.0, 2.0]], np.float32)
    depth = points_to_sparse_depth(points, camera)
    # u = 4 * 0 / 2 + 3.5 -> rint 4 (round half to even); v = 2.5 -> 2. Nearest (2 m) wins.
    assert depth[2, 4] == 2.0 and depth[2, 6] == 2.0 and np.isfinite(depth).sum() == 2
    # A cloud in a body frame (REP 103: x forward, y left, z up) at the camera's centre:
    # optical x = -y, y = -z, z = x, i.e. the conjugate of the usual link -> optical
    # rotation (-0.5, 0.5, -0.5, 0.5).
    cam_from_base = (0.0, 0.0, 0.0, 0.5, -0.5, 0.5, 0.5)
    base_points = np.array([[2.0, 0.0, 0.0], [2.0, -1.0, 0.0]])   # ahead; 1 m to the right
    optical = transform_points(base_points, cam_from_base)
    assert np.allclose(optical, [[0.0, 0.0, 2.0], [1.0, 0.0, 2.0]], atol=1e-6)
    assert np.allclose(rotation_from_quaternion(0, 0, 0, 2.0), np.eye(3))  # normalised
    with pytest.raises(ValueError, match='7 numbers'):
        transform_points(base_points, (0.0, 0.0, 0.0))


def test_neighbourhood_fill_is_the_geometric_mean_of_the_nearest_fill_over_the_gap():
    # Samples in columns 0 (1 m) and 7 (4 m): columns 0-3 are nearest to 1 m, 4-7 to 4 m.
    depth = np.full((3, 8), NAN, np.float32)
    depth[:, 0], depth[:, 7] = 1.0, 4.0
    nearest, distance = nearest_fill_with_distance(depth)
    assert np.array_equal(nearest[1], [1, 1, 1, 1, 4, 4, 4, 4])
    fill = neighbourhood_fill(nearest, distance)
    # Pixel (1, 2) is 2 px from a sample: its window is rows 0-2 x columns 0-4, 12 pixels at
    # 1 m and 3 at 4 m: exp((12 ln 1 + 3 ln 4) / 15) = 4 ** (1 / 5).
    assert fill[1, 2] == pytest.approx(4.0 ** 0.2, rel=1e-5)
    # Pixel (1, 1): 1 px, window rows 0-2 x columns 0-2, all 1 m.
    assert fill[1, 1] == pytest.approx(1.0)
    assert np.array_equal(fill[:, [0, 7]], depth[:, [0, 7]])      # samples keep their depth
    # Symmetric: (1, 5) is 2 px from the 4 m column, window columns 3-7: 3 x 1 m, 12 x 4 m.
    assert fill[1, 5] == pytest.approx(4.0 ** 0.8, rel=1e-5)
    # Scale-free: every depth doubled doubles the fill.
    assert np.allclose(neighbourhood_fill(2 * nearest, distance), 2 * fill, rtol=1e-5)


def test_delaunay_triangles_of_a_square_and_a_line():
    # Four corners of a square: two triangles sharing a diagonal, corners as (row, col).
    rows, cols = delaunay_triangles(np.array([0, 0, 4, 4]), np.array([0, 6, 0, 6]), (5, 7))
    assert rows.shape == cols.shape == (2, 3)
    corners = {frozenset(zip(r, c)) for r, c in zip(rows.tolist(), cols.tolist())}
    assert set().union(*corners) == {(0, 0), (0, 6), (4, 0), (4, 6)}
    # Collinear points span no triangle.
    line_rows, _ = delaunay_triangles(np.zeros(5, int), np.arange(5), (3, 5))
    assert line_rows.shape == (0, 3)


def test_linear_fill_reproduces_log_affine_depth_inside_the_hull():
    rng = np.random.default_rng(0)
    points = np.unique(rng.integers(0, [30, 40], (120, 2)), axis=0)
    points = np.vstack([points, [[0, 0], [0, 39], [29, 0], [29, 39]]])   # hull = the image
    rows, cols = np.mgrid[0:30, 0:40]
    log_depth = 0.5 + 0.03 * rows - 0.02 * cols
    depth = np.full((30, 40), NAN, np.float32)
    depth[points[:, 0], points[:, 1]] = np.exp(log_depth[points[:, 0], points[:, 1]])
    fill = linear_fill(depth)
    assert fill.dtype == np.float32
    assert np.allclose(np.log(fill), log_depth, atol=1e-5)
    # Scale-free: every depth tripled triples the fill.
    assert np.allclose(linear_fill(3 * depth), 3 * fill, rtol=1e-5)


def test_linear_fill_by_hand_and_outside_the_hull():
    # One triangle (0, 0) 1 m, (0, 5) e m, (4, 0) e^2 m: log d = row / 2 + col / 5 inside.
    depth = np.full((5, 6), NAN, np.float32)
    depth[0, 0], depth[0, 5], depth[4, 0] = 1.0, np.e, np.e ** 2
    fill = np.log(linear_fill(depth))
    assert fill[2, 1] == pytest.approx(1.0 + 0.2, abs=1e-5)
    assert fill[1, 3] == pytest.approx(0.5 + 0.6, abs=1e-5)
    # (4, 5) is outside (the hull edge is col = 5 (4 - row) / 4): it takes the nearest
    # interpolated pixel, (1, 3) or (2, 2), both 13 ** 0.5 px away.
    assert np.isclose(fill[4, 5], 1.1, atol=1e-5) or np.isclose(fill[4, 5], 1.4, atol=1e-5)
    # Samples on one row: no triangle, every pixel takes its column's sample.
    row = np.full((4, 6), NAN, np.float32)
    row[0] = np.arange(1, 7)
    assert np.allclose(linear_fill(row), np.arange(1, 7)[None].repeat(4, 0))
    with pytest.raises(ImageFormatError):
        linear_fill(np.full((4, 6), NAN, np.float32))


def _subdiv_linear_fill(depth):
    """The reference: log depth linear over Subdiv2D's Delaunay triangles of every known
    pixel, outside them the nearest interpolated pixel (SciPy's exact transform)."""
    from scipy import ndimage
    known = np.isfinite(depth)
    log_depth = np.log(np.where(known, depth, 1.0)).astype(np.float32)
    corner_rows, corner_cols = delaunay_triangles(*np.nonzero(known), depth.shape)
    fill = np.where(known, log_depth, _rasterise_planes()(corner_rows, corner_cols, log_depth))
    _, (rows, cols) = ndimage.distance_transform_edt(~np.isfinite(fill), return_indices=True)
    return fill[rows, cols]


def test_linear_fill_is_as_accurate_as_triangulating_every_pixel():
    # Triangles from the Voronoi diagram of the known pixels (+ the hull's, exactly) instead
    # of triangulating every known pixel: the same fill but where near-cocircular points are
    # split along the other diagonal (both Delaunay), which moves the error by a few percent.
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:120, 0:160]
    truth = 1.0 + 0.5 * np.sin(rows / 9.0) * np.cos(cols / 13.0)        # log depth
    for density in (0.005, 0.05, 0.2):
        depth = np.where(rng.random(truth.shape) < density, np.exp(truth),
                         NAN).astype(np.float32)
        fill, reference = np.log(linear_fill(depth)), _subdiv_linear_fill(depth)
        error, reference_error = np.abs(fill - truth).mean(), np.abs(reference - truth).mean()
        assert error < 1.05 * reference_error, density
        assert np.percentile(np.abs(fill - reference), 99) < 0.05, density


def test_hull_slivers_are_interpolated_not_extrapolated():
    # (57, 0), (54, 40), (57, 79): a flat triangle along the bottom border, its circumcentre
    # far below the image, so no Voronoi vertex of it lies in the image.
    depth = np.full((60, 80), NAN, np.float32)
    depth[57, 0], depth[54, 40], depth[57, 79] = 1.0, np.e, 1.0
    depth[5, 40] = 1.0
    fill = np.log(linear_fill(depth))
    # (56, 40): on the plane of the three bottom samples, log d = 1 - (row - 54) / 3.
    assert fill[56, 40] == pytest.approx(1.0 - 2.0 / 3.0, abs=1e-5)


def test_samples_on_an_arc_are_triangulated_not_left_to_the_nearest():
    # A textureless region in the bottom left corner, its edge an arc of samples around the
    # corner (and a sparse grid beyond): the arc's Voronoi cells all meet at the corner, so
    # the Voronoi dual alone leaves the region empty. Any triangulation of the samples
    # reproduces log-affine depth.
    rows, cols = np.mgrid[0:200, 0:240]
    log_depth = 0.2 + 0.01 * rows + 0.004 * cols
    from_corner = np.hypot(rows - 199, cols)
    angle = np.linspace(0, np.pi / 2, 60)
    arc = np.unique(np.rint(np.column_stack([199 - 120 * np.sin(angle),
                                             120 * np.cos(angle)])).astype(int), axis=0)
    grid = np.argwhere((rows % 20 == 0) & (cols % 20 == 0) & (from_corner > 130))
    points = np.vstack([arc, grid, [[199, 239], [0, 0], [0, 239]]])
    depth = np.full(rows.shape, NAN, np.float32)
    depth[points[:, 0], points[:, 1]] = np.exp(log_depth[points[:, 0], points[:, 1]])
    fill = np.log(linear_fill(depth))
    inside = np.zeros(rows.shape, np.uint8)
    hull = cv2.convexHull(np.ascontiguousarray(points[:, ::-1]).astype(np.int32))
    cv2.fillConvexPoly(inside, hull, 1)
    region = (from_corner < 118) & (inside == 1)
    assert np.abs(fill - log_depth)[region].max() < 1e-4


def test_nearest_covered_pixel_is_exactly_the_nearest():
    from scipy import ndimage
    rng = np.random.default_rng(4)
    for density in (0.001, 0.03, 0.5):
        covered = rng.random((67, 91)) < density
        covered[0, 0] = True
        rows, cols = _nearest_covered()(covered)
        assert covered[rows, cols].all()
        distance = np.hypot(rows - np.arange(67)[:, None], cols - np.arange(91)[None])
        assert np.allclose(distance, ndimage.distance_transform_edt(~covered), atol=1e-9)


def test_fill_tensor_channels_are_the_fills_themselves():
    rng = np.random.default_rng(1)
    depth = np.where(rng.random((48, 64)) < 0.05, rng.uniform(1, 5, (48, 64)),
                     NAN).astype(np.float32)
    gray = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    tensor = semidense_fill_tensor(depth, ModelSpec(input_kind='semidense', input_channels=6,
                                                    input_height=48, input_width=64),
                                   gray)
    nearest, distance = nearest_fill_with_distance(depth)
    assert np.array_equal(tensor[0, 0], nearest) and np.array_equal(tensor[0, 2], distance)
    assert np.array_equal(tensor[0, 1], np.isfinite(depth))
    assert np.allclose(tensor[0, 3], gray / 255.0)
    assert np.array_equal(tensor[0, 4], neighbourhood_fill(nearest, distance))
    assert np.array_equal(tensor[0, 5], linear_fill(depth))
