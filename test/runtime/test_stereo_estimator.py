"""depth_nodes.runtime.stereo_estimator without ROS: a disparity model's depth from the training
rig's baseline and this camera's fx / W, this rig's disparity, at either output resolution with
a principal-point offset; a spec without a training rig; SGBM input checks."""
import dataclasses

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


# The constant model on LEFT/RIGHT: f W + cx_r - cx_l = 0.05 * 160 + 4 = 12 px of the training
# rig; Z = fx B_t / 12 = 100 * 0.5 / 12 m, whatever this rig's baseline.
TRAINING_RIG_DEPTH = 100 * 0.5 / 12


def test_model_depth_from_the_training_baseline_disparity_of_this_rig(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'))
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT)
    np.testing.assert_allclose(result.depth, TRAINING_RIG_DEPTH, rtol=1e-6)
    # This rig's disparity: 12 px x B / B_t = 12 x 0.12 / 0.5 = 2.88 px, so Z = f T / d.
    np.testing.assert_allclose(result.disparity, 2.88, rtol=1e-6)
    np.testing.assert_allclose(100 * result.baseline / result.disparity, result.depth,
                               rtol=1e-6)
    assert (result.baseline, result.min_disparity, result.max_disparity) == \
        (pytest.approx(0.12), pytest.approx(4 * 0.24), pytest.approx((0.3 * 160 + 4) * 0.24))
    assert result.valid_window == (0, 0, W, H)
    assert result.extras == {'training_baseline': True,
                             'focal_ratio': pytest.approx(100 / 160 / 0.9)}


def test_twice_the_baseline_keeps_the_depth_and_doubles_the_disparity(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'))
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT, baseline=0.24)
    np.testing.assert_allclose(result.depth, TRAINING_RIG_DEPTH, rtol=1e-6)
    np.testing.assert_allclose(result.disparity, 5.76, rtol=1e-6)


def test_depth_follows_the_focal_per_width_not_the_resolution(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'))
    rng = np.random.default_rng(1)
    left = rng.integers(0, 256, (2 * H, 2 * W, 3), dtype=np.uint8)
    # The same rig at twice the resolution (fx 200, offset 8 px): the same depth.
    big_left, big_right = LEFT.scaled(2 * W, 2 * H), RIGHT.scaled(2 * W, 2 * H)
    result = estimator.estimate(left, 'rgb8', left, 'rgb8', big_left, big_right)
    np.testing.assert_allclose(result.depth, TRAINING_RIG_DEPTH, rtol=1e-5)
    # A wider view (fx 50 at 160 px, no offset): things look smaller, the network's 0.05 of
    # the width means nearer: Z = (50 / 160) 0.5 / 0.05 = 3.125 m; d = 50 x 0.12 / Z.
    wide_left = CameraIntrinsics(W, H, fx=50.0, fy=50.0, cx=79.5, cy=47.5)
    wide_right = CameraIntrinsics(W, H, fx=50.0, fy=50.0, cx=79.5, cy=47.5, tx=-50 * 0.12)
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', wide_left, wide_right)
    np.testing.assert_allclose(result.depth, 3.125, rtol=1e-6)
    np.testing.assert_allclose(result.disparity, 50 * 0.12 / 3.125, rtol=1e-6)
    assert result.extras['focal_ratio'] == pytest.approx(50 / 160 / 0.9)


def test_spec_without_a_training_rig_takes_this_rigs_baseline(tmp_path):
    spec = dataclasses.replace(SPEC, baseline=0.0, focal_fraction=0.0)
    model = write_affine_model(tmp_path / 'no_rig.onnx', spec, weights=(0, 0, 0), bias=0.05)
    estimator = LearnedStereoEstimator(open_model(str(model), 'onnxruntime'))
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT)
    # d = 8 + 4 = 12 px of this rig: Z = fx B / d = 100 * 0.12 / 12 = 1 m
    np.testing.assert_allclose(result.disparity, 12.0, rtol=1e-6)
    np.testing.assert_allclose(result.depth, 1.0, rtol=1e-6)
    assert (result.min_disparity, result.max_disparity) == (4.0, pytest.approx(0.3 * 160 + 4))
    assert result.extras == {'training_baseline': False}


def test_model_resolution_output_scales_camera_offset_and_pixels(constant_model):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'),
                                       output_resolution='model')
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT, baseline=0.24)
    # 32x24 output: fx 20, offset 0.8 px, d = 0.05 * 32 + 0.8 = 2.4 px of the training rig;
    # Z = 20 * 0.5 / 2.4 (as at full size), this rig's d = 2.4 * 0.24 / 0.5 = 1.152 px
    assert result.depth.shape == (24, 32) and result.camera.fx == pytest.approx(20.0)
    np.testing.assert_allclose(result.depth, TRAINING_RIG_DEPTH, rtol=1e-5)
    np.testing.assert_allclose(result.disparity, 1.152, rtol=1e-5)
    depth_result = result.depth_result()
    assert depth_result.camera == result.camera and depth_result.depth is result.depth


def test_depth_range_masks_and_non_disparity_models_are_refused(constant_model, tmp_path):
    estimator = LearnedStereoEstimator(open_model(str(constant_model), 'onnxruntime'),
                                       post_process='pp')
    left, right = images()
    result = estimator.estimate(left, 'rgb8', right, 'rgb8', LEFT, RIGHT,
                                depth_range=(0.1, 4.0))
    assert np.isnan(result.depth).all()                      # 4.17 m lies outside
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
