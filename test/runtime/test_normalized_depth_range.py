"""A user's depth range clips normalized_depth outputs; it never rescales them (the mapping
onto metres is the model's own [min_depth, max_depth])."""
import numpy as np
from fixtures.models import write_affine_model

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import output_to_metres
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

SPEC = ModelSpec(method='affine', input_kind='gray', input_channels=1, input_height=4,
                 input_width=6, mean=(0.5,), std=(0.5,), output_kind='normalized_depth',
                 output_range=(-1.0, 1.0), near_is_bright=True, min_depth=0.5, max_depth=10.0)


def test_valid_range_masks_without_moving_the_mapping():
    raw = np.array([[1.0, 0.0, -1.0]], np.float32)      # near, middle, far
    np.testing.assert_allclose(output_to_metres(raw, SPEC), [[0.5, 5.25, 10.0]])
    clipped = output_to_metres(raw, SPEC, valid_range=(1.0, 6.0))
    assert np.isnan(clipped[0, 0]) and np.isnan(clipped[0, 2])
    assert clipped[0, 1] == np.float32(5.25)


def test_estimator_depth_range_clips_a_normalized_model(tmp_path):
    # Output = 1.0 * x + 0: the gray pixel scaled to [-1, 1], so depth falls with brightness.
    path = write_affine_model(tmp_path / 'gray.onnx', SPEC, weights=(1.0,), bias=0.0)
    estimator = MonoDepthEstimator(open_model(str(path), 'onnxruntime'))
    image = np.array([[0, 64, 128, 191, 255, 255]] * 4, np.uint8)
    full = estimator.estimate(image, 'mono8').depth
    expected = 0.5 + (1 - image / 255.0) * 9.5        # x = 2 p/255 - 1, t = (x + 1) / 2
    np.testing.assert_allclose(full, expected, rtol=1e-5)
    ranged = estimator.estimate(image, 'mono8', depth_range=(1e-6, 1e6)).depth
    np.testing.assert_array_equal(ranged, full)       # evaluation range: same metres
    near = estimator.estimate(image, 'mono8', depth_range=(0.1, 5.0)).depth
    np.testing.assert_array_equal(np.isnan(near), full > 5.0)
    np.testing.assert_array_equal(near[full <= 5.0], full[full <= 5.0])
