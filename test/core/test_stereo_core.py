"""depth_nodes.core.stereo: SGBM on a pair with known disparity, rig geometry from the
projection matrices, disparity -> depth with a principal-point offset, the "pp" combination."""
import numpy as np
import pytest
from fixtures.stereo_pairs import textured_pair

from depth_nodes.core.camera import CameraIntrinsics, CameraModelError
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.stereo import (SgbmParameters, disparity_offset, gray8,
                                     mirror_post_process, sgbm_disparity, sgbm_valid_window,
                                     stereo_baseline, stereo_depth)

LEFT = CameraIntrinsics(640, 480, fx=500.0, fy=500.0, cx=319.5, cy=239.5)
# The right camera of a 0.12 m rig: P[0, 3] = -fx B = -60
RIGHT = CameraIntrinsics(640, 480, fx=500.0, fy=500.0, cx=319.5, cy=239.5, tx=-60.0)


def test_sgbm_recovers_a_known_constant_disparity():
    params = SgbmParameters(num_disparities=32, block_size=5)
    left, right = textured_pair(9)
    disparity = sgbm_disparity(left, right, params)
    x, y, w, h = sgbm_valid_window(160, 96, params)
    inside = disparity[y:y + h, x:x + w]
    assert np.nanmedian(inside) == pytest.approx(9.0, abs=0.1)
    assert np.mean(np.abs(inside - 9.0) < 0.5) > 0.95
    # The leftmost columns cannot be matched (their partners would lie left of the image).
    assert np.isnan(disparity[:, :params.min_disparity + 8]).all()


def test_valid_window_excludes_the_search_range_and_block_border():
    params = SgbmParameters(num_disparities=64, block_size=7)
    x, y, w, h = sgbm_valid_window(640, 480, params)
    assert (x, y) == (63 + 3, 3)          # max disparity 63 + half a block
    assert (x + w, y + h) == (640 - 3, 480 - 3)


@pytest.mark.parametrize('bad, match', [
    (dict(num_disparities=40), 'multiple of 16'), (dict(block_size=4), 'odd'),
    (dict(p1=100, p2=50), 'p1 < p2'), (dict(mode='fast'), 'mode'),
    (dict(uniqueness_ratio=150), 'percentage')])
def test_invalid_sgbm_parameters_are_refused_naming_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        SgbmParameters(**bad)


def test_automatic_penalties_follow_opencvs_recommendation():
    assert SgbmParameters(block_size=5).smoothness_penalties(1) == (200, 800)
    assert SgbmParameters(block_size=5, p1=10, p2=90).smoothness_penalties(3) == (10, 90)
    assert SgbmParameters(min_disparity=-4, num_disparities=32).max_disparity == 27


def test_sgbm_refuses_pairs_of_different_size():
    with pytest.raises(ValueError, match='differ'):
        sgbm_disparity(np.zeros((8, 32), np.uint8), np.zeros((8, 16), np.uint8),
                       SgbmParameters(num_disparities=16))


def test_gray_conversion_by_encoding():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255                                   # pure red
    assert gray8(rgb, 'rgb8')[0, 0] == 76               # 0.299 * 255
    assert gray8(rgb, 'bgr8')[0, 0] == 29               # read as blue: 0.114 * 255
    assert gray8(np.full((2, 2), 65535, np.uint16), 'mono16')[0, 0] == 255
    with pytest.raises(ImageFormatError, match='depth encoding'):
        gray8(np.zeros((2, 2), np.float32), '32FC1')


def test_baseline_parsed_from_the_right_projection_matrix():
    assert stereo_baseline(LEFT, RIGHT) == pytest.approx(0.12)
    # From a CameraInfo P as stereo_image_proc reads it (Tx = -fx B).
    p = [700.0, 0.0, 320.0, -700.0 * 0.54, 0.0, 700.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    right = CameraIntrinsics.from_k([700.0, 0, 320, 0, 700, 240, 0, 0, 1], 640, 480, p)
    left = CameraIntrinsics.from_k([700.0, 0, 320, 0, 700, 240, 0, 0, 1], 640, 480)
    assert stereo_baseline(left, right) == pytest.approx(0.54)
    with pytest.raises(CameraModelError, match='baseline'):
        stereo_baseline(LEFT, LEFT)


def test_depth_with_principal_point_offset():
    # Middlebury-style: Z = fx B / (d + cx_r - cx_l); 500 * 0.12 / (20 + 10) = 2 m
    right = CameraIntrinsics(640, 480, 500.0, 500.0, 329.5, 239.5, tx=-60.0)
    assert disparity_offset(LEFT, right) == 10.0
    depth = stereo_depth(np.array([[20.0, np.nan, -10.0]], np.float32), 500.0, 0.12, 10.0)
    assert depth[0, 0] == pytest.approx(2.0)
    assert np.isnan(depth[0, 1]) and np.isnan(depth[0, 2])     # unknown; d + offset <= 0
    assert stereo_depth(np.array([30.0], np.float32), 500.0, 0.12)[0] == pytest.approx(2.0)


def test_pp_combination_on_a_constructed_example():
    # 41 columns: t = x / 40. Direct run = 1, mirrored run = 3 everywhere.
    direct, mirrored = np.ones((2, 41), np.float32), np.full((2, 41), 3.0, np.float32)
    combined = mirror_post_process(direct, mirrored)
    expected = np.full(41, 2.0, np.float32)          # the mean in the middle
    expected[:3] = 3.0                               # t <= 0.05: the mirrored run
    expected[3] = 0.5 * 3.0 + 0.5 * 2.0              # t = 0.075: halfway down the ramp
    expected[-3:] = 1.0                              # t >= 0.95: the direct run
    expected[-4] = 0.5 * 1.0 + 0.5 * 2.0
    np.testing.assert_allclose(combined[0], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(combined[0], combined[1])
    # Agreeing runs are returned unchanged.
    ramp = np.tile(np.linspace(0.01, 0.2, 41, dtype=np.float32), (3, 1))
    np.testing.assert_allclose(mirror_post_process(ramp, ramp), ramp, atol=1e-7)
    with pytest.raises(ValueError, match='one size'):
        mirror_post_process(direct, mirrored[:, :40])
