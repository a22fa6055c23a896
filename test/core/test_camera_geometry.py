import cv2
import numpy as np
import pytest

from depth_nodes.core.camera import (CameraIntrinsics, CameraModelError, backproject,
                                     disparity_to_depth, project_points, rasterize_depth)
from depth_nodes.core.colorize import colorize_depth
from depth_nodes.core.pointcloud import depth_to_xyzrgb, pack_rgb

CAM = CameraIntrinsics(width=640, height=480, fx=500.0, fy=510.0, cx=319.5, cy=239.5)


def test_scaling_to_half_resolution_keeps_pixel_centres():
    half = CAM.scaled(320, 240)
    assert (half.fx, half.fy) == (250.0, 255.0)
    # (cx + 0.5) * s - 0.5: the principal point at the image centre stays at the centre.
    assert (half.cx, half.cy) == (159.5, 119.5)


def test_baseline_from_right_camera_projection_matrix():
    # stereo_image_proc convention: P[0, 3] = -fx * B.
    p = [500.0, 0, 320, -500.0 * 0.12, 0, 500.0, 240, 0, 0, 0, 1, 0]
    right = CameraIntrinsics.from_k([500.0, 0, 320, 0, 500.0, 240, 0, 0, 1], 640, 480, p)
    assert right.baseline == pytest.approx(0.12)
    assert right.scaled(320, 240).baseline == pytest.approx(0.12)  # metres do not scale


def test_zero_focal_length_is_refused():
    with pytest.raises(CameraModelError):
        CameraIntrinsics.from_k([0.0] * 9, 640, 480)


def test_disparity_depth_relation():
    depth = disparity_to_depth(np.array([[50.0, 0.0, -1.0]]), fx=500.0, baseline=0.2)
    assert depth[0, 0] == pytest.approx(2.0)
    assert np.isnan(depth[0, 1:]).all()


def test_backproject_then_project_is_identity():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 20.0, (480, 640)).astype(np.float32)
    points = backproject(depth, CAM)
    # pixel (u=600, v=10): x = (600 - 319.5) / 500 * Z
    assert points[10, 600, 0] == pytest.approx((600 - 319.5) / 500 * depth[10, 600], rel=1e-5)
    u, v, z = project_points(points.reshape(-1, 3), CAM)
    raster = rasterize_depth(u, v, z, CAM)
    np.testing.assert_allclose(raster, depth, rtol=1e-5)


def test_rasterize_keeps_the_nearest_point():
    pts = np.array([[0, 0, 4.0], [0, 0, 2.0], [0, 0, 3.0]], np.float32)
    u, v, z = project_points(pts, CAM)
    raster = rasterize_depth(u, v, z, CAM)
    assert raster[240, 320] == 2.0  # rint(319.5) = 320 (banker's rounding to even)
    assert np.isfinite(raster).sum() == 1


def test_colorize_near_red_far_blue_invalid_black():
    rgb = colorize_depth(np.array([[0.5, 10.0, np.nan]], np.float32), 0.5, 10.0)
    near, far, invalid = rgb[0]
    assert near[0] > near[2] and far[2] > far[0]
    assert invalid.tolist() == [0, 0, 0]


def test_colorize_levels_are_turbo_linear_in_inverse_depth():
    """Level k of 255 (0 = far limit, 254 = near limit, linear in 1/Z) is OpenCV's turbo
    colour round(k * 255 / 254); out-of-range, NaN and inf pixels get the invalid colour."""
    near, far = 0.5, 10.0
    levels = np.array([0, 1, 100, 127, 253, 254])
    inverse = 1 / far + levels / 254 * (1 / near - 1 / far)
    depth = np.concatenate([1 / inverse, [0.4, 11.0, np.nan, np.inf]]).astype(np.float32)
    rgb = colorize_depth(depth[None, :], near, far, invalid_rgb=(1, 2, 3))[0]
    turbo = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None],
                              cv2.COLORMAP_TURBO)[:, 0, ::-1]
    np.testing.assert_array_equal(rgb[:6], turbo[np.rint(levels * 255 / 254).astype(int)])
    assert rgb[6:].tolist() == [[1, 2, 3]] * 4


def test_xyzrgb_layout_and_stride():
    depth = np.full((480, 640), 2.0, np.float32)
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[..., 0] = 255
    cloud = depth_to_xyzrgb(depth, CAM, rgb, stride=2)
    assert cloud.shape == (240, 320, 4)
    assert cloud[0, 0, 3].view(np.uint32) == 0xFF0000
    # Point (row 10, column 7) is pixel (20, 14): x = (u - cx) z / fx, y = (v - cy) z / fy.
    np.testing.assert_allclose(cloud[10, 7, :3], [(14 - CAM.cx) * 2 / CAM.fx,
                                                  (20 - CAM.cy) * 2 / CAM.fy, 2.0], rtol=1e-6)
    assert depth_to_xyzrgb(depth, CAM, None, stride=3)[0, 0, 3].view(np.uint32) == 0xFFFFFF
    assert pack_rgb(np.array([1, 2, 3], np.uint8)).view(np.uint32) == 0x010203
