"""core.semidense, the node side: (inverse) depth + variance -> metres, sparse resampling,
network input channels, point projection, keeping known depth; unknown never reads as 0."""
import numpy as np
import pytest

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.semidense import (coarse_linear_fill, depth_from_semidense_image,
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


def test_linear_on_grid_reproduces_an_affine_function_inside_the_hull():
    from depth_nodes.core.semidense import _linear_on_grid
    rng = np.random.default_rng(0)
    points = np.unique(rng.integers(0, [30, 40], (120, 2)), axis=0)
    points = np.vstack([points, [[0, 0], [0, 39], [29, 0], [29, 39]]])   # hull = the grid
    values = 0.5 + 0.03 * points[:, 0] - 0.02 * points[:, 1]
    out = _linear_on_grid(points, values, 30, 40)
    rows, cols = np.mgrid[0:30, 0:40]
    assert np.allclose(out, 0.5 + 0.03 * rows - 0.02 * cols, atol=1e-9)
    # outside the hull of three corners: NaN
    corner = _linear_on_grid(np.array([[0, 0], [0, 39], [29, 0]]), np.zeros(3), 30, 40)
    assert np.isnan(corner[29, 39]) and corner[0, 0] == 0.0


def test_coarse_linear_fill_by_hand():
    # Depth known in the first and last 4 columns of a 48x64 image, log depth affine in the
    # column x. Blocks (4x4) average log depth: block column j holds f(4 j + 1.5). Free
    # block columns 2-13 are Delaunay-linear between columns 0 and 15, so exact; columns 1
    # and 14 touch known blocks and take their mean, f(1.5) and f(57.5); the bilinear resize
    # then gives pixel x the value at block coordinate (x - 1.5) / 4.
    cols = np.arange(64, dtype=np.float64)
    f = 0.2 + 0.02 * cols
    depth = np.full((48, 64), NAN, np.float32)
    depth[:, :4] = np.exp(f[:4])
    depth[:, 60:] = np.exp(f[60:])
    fill = np.log(coarse_linear_fill(depth))
    assert np.allclose(fill[:, 10:54], f[10:54], atol=1e-5)     # between block columns 2-13
    assert np.allclose(fill[:, 5], 0.2 + 0.02 * 1.5, atol=1e-5)  # block columns 0 and 1
    assert np.allclose(np.log(coarse_linear_fill(3 * depth)), fill + np.log(3), atol=1e-5)


def test_coarse_linear_fill_outside_the_samples_takes_the_nearest_interpolated_block():
    # Two blocks in one row of blocks: no triangle. Every block takes the nearer one.
    depth = np.full((8, 16), NAN, np.float32)
    depth[0:4, 0:4], depth[0:4, 12:16] = 2.0, 8.0
    fill = coarse_linear_fill(depth)
    assert np.allclose(fill[:, :4], 2.0) and np.allclose(fill[:, 12:], 8.0)
    assert np.all(np.diff(fill[0]) >= 0)                     # the resize blends in between
    with pytest.raises(ImageFormatError):
        coarse_linear_fill(np.full((8, 16), NAN, np.float32))
