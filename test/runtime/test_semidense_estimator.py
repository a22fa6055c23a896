"""SemiDenseEstimator on a hand-made model: input moved onto the model's grid, output back to
the input's size in metres, known depths kept, model-size output with scaled intrinsics."""
import numpy as np
import pytest
from fixtures.models import write_affine_model

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator


def model(tmp_path, channels=2, kind='semidense'):
    # out = depth/s - 0.5 mask + 0.5 (+ 0 * intensity): known -> its depth, unknown -> 0.5 s
    spec = ModelSpec(method='semidense', input_kind=kind, input_names=('image',),
                     input_height=24, input_width=32, input_channels=channels,
                     mean=(0.0,) * channels, std=(1.0,) * channels, output_name='depth',
                     min_depth=0.01, max_depth=100.0, extras={'scale_percentile': 100.0})
    path = write_affine_model(tmp_path / f'{kind}{channels}.onnx', spec,
                              weights=(1.0, -0.5, 0.0), bias=0.5)
    return open_model(str(path), 'onnxruntime')


def test_input_of_another_size_in_metres_with_known_depth_kept(tmp_path):
    estimator = SemiDenseEstimator(model(tmp_path))
    depth = np.full((48, 64), np.nan, np.float32)
    depth[10, 20], depth[0, 0], depth[1, 1] = 4.0, np.inf, 0.0     # inf, 0: unknown
    result = estimator.estimate(depth, keep_input_depth=True)
    assert result.depth.shape == (48, 64) and result.extras['scale'] == 4.0
    # The sample lands on model pixel (5, 10); far from it the network says 0.5 * 4 m.
    assert result.depth[40, 60] == pytest.approx(2.0)
    assert result.depth[10, 20] == 4.0                          # kept exactly
    assert np.isfinite(result.depth).all() and result.depth.min() >= 2.0 - 1e-6
    near = estimator.estimate(depth, keep_input_depth=False).depth
    assert 2.0 < near[10, 20] <= 4.0                            # bilinear around the sample


def test_model_resolution_output_scales_the_camera(tmp_path):
    estimator = SemiDenseEstimator(model(tmp_path), output_resolution='model')
    camera = CameraIntrinsics(64, 48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)
    depth = np.full((48, 64), np.nan, np.float32)
    depth[::2, ::2] = 3.0                     # one sample on every model pixel
    result = estimator.estimate(depth, camera, keep_input_depth=True)
    assert result.depth.shape == (24, 32) and np.allclose(result.depth, 3.0)
    assert (result.camera.width, result.camera.fx) == (32, 30.0)


def test_wrong_models_and_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="input_kind 'semidense'"):
        SemiDenseEstimator(model(tmp_path, kind='gray'))
    estimator = SemiDenseEstimator(model(tmp_path, channels=3))
    assert estimator.needs_intensity
    depth = np.full((24, 32), 2.0, np.float32)
    with pytest.raises(ImageFormatError, match='intensity'):
        estimator.estimate(depth)
    gray = np.zeros((24, 32), np.uint8)
    assert np.allclose(estimator.estimate(depth, intensity=gray).depth, 2.0)
    with pytest.raises(ImageFormatError, match='no known depth'):
        estimator.estimate(np.zeros((24, 32), np.float32), intensity=gray)
