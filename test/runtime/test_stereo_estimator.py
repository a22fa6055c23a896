"""depth_nodes.runtime.stereo_estimator without ROS: a disparity model's pixels and depth at
either output resolution with a principal-point offset, the rig ratio, SGBM input checks."""
import numpy as np
import pytest
from fixtures.models import write_affine_model

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.stereo import SgbmParameters
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator, SgbmStereoEstimator

H, W = 96, 160
LEFT = CameraIntrinsics(W, H, fx=100.0, fy=100.0, cx=79.5, cy=47.5)
# Principal points 4 px apart (cx_r - cx_l = 4), baseline 0.12 m.
RIGHT = CameraIntrinsics(W, H, fx=100.0, fy=100.0, cx=83.5, cy=47.5, tx=-12.0)
SPEC = ModelSpec(method='constant_disparity', input_height=24, input_width=32,
                 output_name='disparity', output_kind='disparity_fraction', baseline=0.5,
                 focal_fraction=0.9, min_depth=0.01, max_depth=1000.0,
                 extras={'max_disparity': 0.3})


@pytest.fixture(scope='module')
def constant_model(tmp_path_factory):
    # disparity = 0.05 of the width everywhere
    return write_affine_model(tmp_path_factory.mktemp('stereo') / 'constant.onnx', SPEC,
                              weights=(0, 0, 0), bias=0.05)


def images():
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def test_model_disparity_in_pixels_and_depth_with_the_offset(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'))
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT)
    # d = 0.05 * 160 = 8 px; Z = fx B / (d + cx_r - cx_l) = 100 * 0.12 / 12 = 1 m
    np.testing.assert_allclose(result.disparity, 12.0, rtol=1e-6)
    np.testing.assert_allclose(result.depth, 1.0, rtol=1e-6)
    assert (result.baseline, result.min_disparity, result.max_disparity) == \
        (pytest.approx(0.12), 4.0, pytest.approx(0.3 * 160 + 4))
    assert result.valid_window == (0, 0, W, H)
    # (fx / W) B of this rig over the spec's 0.9 * 0.5
    assert result.extras['rig_ratio'] == pytest.approx((100 / 160 * 0.12) / 0.45)


def test_model_resolution_output_scales_camera_offset_and_pixels(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'),
                                       output_resolution='model')
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT, baseline=0.24)
    # 32x24 output: fx 20, offset 0.8 px, d = 0.05 * 32 = 1.6 px; Z = 20 * 0.24 / 2.4 = 2 m
    assert result.depth.shape == (24, 32) and result.camera.fx == pytest.approx(20.0)
    np.testing.assert_allclose(result.depth, 2.0, rtol=1e-5)
    np.testing.assert_allclose(result.disparity, 2.4, rtol=1e-5)
    depth_result = result.depth_result()
    assert depth_result.camera == result.camera and depth_result.depth is result.depth


def test_depth_range_masks_and_non_disparity_models_are_refused(constant_model, tmp_path):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'),
                                       post_process='pp')
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT,
                                depth_range=(0.1, 0.5))
    assert np.isnan(result.depth).all()                      # 1 m lies outside
    metric = write_affine_model(tmp_path / 'metric.onnx', ModelSpec(
        input_height=24, input_width=32, output_kind='metric_depth'))
    with pytest.raises(ValueError, match='disparity model'):
        LearnedStereoEstimator(open_model(str(metric), 'onnxruntime'))


def test_sgbm_estimator_checks_its_inputs():
    estimator = SgbmStereoEstimator(SgbmParameters(num_disparities=16))
    left, right = images()
    with pytest.raises(ValueError, match='right image is 80x48'):
        estimator.estimate(left, 'rgb8', right[::2, ::2], 'rgb8', LEFT, RIGHT)
    with pytest.raises(ValueError, match='camera_info is 320x192'):
        estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT.scaled(320, 192))
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT, baseline=0.5)
    assert result.baseline == 0.5 and result.disparity_step == 1 / 16
    # Published disparity includes the 4 px offset, so Z = f T / d holds.
    known = np.isfinite(result.depth)
    assert known.any()
    np.testing.assert_allclose(result.depth[known], 100 * 0.5 / result.disparity[known],
                               rtol=1e-5)
