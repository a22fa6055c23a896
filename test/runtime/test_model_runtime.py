"""ONNX Runtime / torch engines, model resolution and the estimator, against hand-made models."""
import math

import numpy as np
import pytest
from fixtures.models import affine_reference, write_affine_model

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.runtime.backends import resolve_backend
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model, resolve_model_path

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-4, max_depth=1e3)


@pytest.fixture(scope='module')
def affine_onnx(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('m') / 'affine.onnx', SPEC)


def test_auto_backend_falls_back_to_onnxruntime_without_tensorrt():
    backend, reason = resolve_backend('auto')
    assert backend == 'onnxruntime' and 'ONNX Runtime' in reason


def test_spec_comes_from_metadata(affine_onnx):
    model = open_model(str(affine_onnx), 'onnxruntime')
    assert model.spec_embedded and model.spec == SPEC
    assert model.engine.input_shapes == {'image': (1, 3, 24, 32)}


def test_estimated_depth_equals_hand_computed_metres(affine_onnx):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    est = MonoDepthEstimator(open_model(str(affine_onnx), 'onnxruntime'))
    result = est.estimate(image, 'rgb8')
    x = (image.astype(np.float32) / 255 - 0.5) / 0.25                    # normalisation
    expected = np.exp(0.5 * x[..., 0] + 1.0 * x[..., 1] + 1.5 * x[..., 2] + 0.25)  # log depth
    np.testing.assert_allclose(result.depth, expected, rtol=1e-5)


def test_input_resolution_output_and_scaled_camera(tmp_path):
    path = write_affine_model(tmp_path / 'strided.onnx', SPEC, output_stride=2)  # 12x16 out
    model = open_model(str(path), 'onnxruntime')
    cam = CameraIntrinsics(64, 48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)
    image = np.full((48, 64, 3), 128, np.uint8)
    full = MonoDepthEstimator(model, 'input').estimate(image, 'rgb8', cam)
    assert full.depth.shape == (48, 64) and full.camera == cam
    small = MonoDepthEstimator(model, 'model').estimate(image, 'rgb8', cam)
    assert small.depth.shape == (12, 16)
    assert (small.camera.fx, small.camera.cx) == (15.0, 7.5)   # 64 -> 16: fx / 4
    x = (128 / 255 - 0.5) / 0.25
    np.testing.assert_allclose(small.depth, math.exp(3.0 * x + 0.25), rtol=1e-5)


def test_letterboxed_model_gives_each_pixel_its_own_depth(tmp_path):
    # A 12x32 image into the 24x32 input: unscaled, 6 padding rows above and below. The
    # per-pixel model then gives exactly the hand-computed depth of every image pixel, at the
    # input resolution and at the model's (the output cropped to the image); stretched, the
    # image is resized to 24 rows and back, which blurs a row-to-row ramp.
    path = write_affine_model(tmp_path / 'letterbox.onnx',
                              ModelSpec(**{**SPEC.__dict__, 'resize_mode': 'letterbox'}))
    model = open_model(str(path), 'onnxruntime')
    image = np.repeat(np.repeat(np.arange(0, 240, 20, dtype=np.uint8)[:, None], 32, axis=1)
                      [:, :, None], 3, axis=2)                           # rows 0, 20, ..., 220
    x = (image.astype(np.float32) / 255 - 0.5) / 0.25
    expected = np.exp(3.0 * x[..., 0] + 0.25)
    for resolution in ('input', 'model'):
        result = MonoDepthEstimator(model, resolution).estimate(image, 'rgb8')
        np.testing.assert_allclose(result.depth, expected, rtol=1e-5)
    stretched = MonoDepthEstimator(open_model(str(write_affine_model(
        tmp_path / 'stretch.onnx', SPEC)), 'onnxruntime')).estimate(image, 'rgb8')
    assert np.abs(stretched.depth / expected - 1).max() > 0.05


def test_letterbox_crop_follows_a_smaller_output(tmp_path):
    # Output stride 2 (12x16): the 6 image rows in the middle of it are the image's 12.
    spec = ModelSpec(**{**SPEC.__dict__, 'resize_mode': 'letterbox'})
    path = write_affine_model(tmp_path / 'strided.onnx', spec, output_stride=2)
    image = np.zeros((12, 32, 3), np.uint8)
    image[:, :16] = 200                         # left half bright, right half dark
    cam = CameraIntrinsics(32, 12, fx=30.0, fy=30.0, cx=15.5, cy=5.5)
    result = MonoDepthEstimator(open_model(str(path), 'onnxruntime'), 'model').estimate(
        image, 'rgb8', cam)
    assert result.depth.shape == (6, 16) and result.camera.fx == 15.0
    x = (np.array([200, 0]) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(result.depth[:, [0, -1]], np.tile(np.exp(3.0 * x + 0.25), (6, 1)),
                               rtol=1e-5)


def test_depth_range_override_masks_pixels(affine_onnx):
    est = MonoDepthEstimator(open_model(str(affine_onnx), 'onnxruntime'))
    image = np.zeros((24, 32, 3), np.uint8)           # x = -2 everywhere -> exp(-5.75) m
    assert np.isfinite(est.estimate(image, 'rgb8').depth).all()
    masked = est.estimate(image, 'rgb8', depth_range=(0.5, 10.0)).depth
    assert np.isnan(masked).all()


def test_user_model_without_spec_uses_inferred_spec_plus_overrides(tmp_path):
    path = write_affine_model(tmp_path / 'bare.onnx', SPEC, with_spec=False)
    model = open_model(str(path), 'onnxruntime',
                       spec_overrides={'output_kind': 'inverse_depth', 'output_scale': 0.5})
    assert not model.spec_embedded
    assert (model.spec.input_height, model.spec.input_width) == (24, 32)
    image = np.full((24, 32, 3), 255, np.uint8)        # x = 1 -> raw 3.25 -> 1/(0.5*3.25)
    depth = MonoDepthEstimator(model).estimate(image, 'rgb8').depth
    np.testing.assert_allclose(depth, 1 / (0.5 * 3.25), rtol=1e-5)


def test_missing_model_names_the_places_searched():
    with pytest.raises(ModelLoadError, match='file not found') as err:
        resolve_model_path('no_such_model')
    assert 'no_such_model.onnx' in str(err.value)


def test_corrupt_model_is_a_clear_error(tmp_path):
    bad = tmp_path / 'corrupt.onnx'
    bad.write_bytes(b'\x08\x07this is not a protobuf')
    with pytest.raises(ModelLoadError, match='corrupt.onnx') as err:
        open_model(str(bad), 'onnxruntime')
    assert 'not a usable ONNX model' in str(err.value)


def test_wrong_suffix_and_directory_are_refused(tmp_path):
    (tmp_path / 'weights.bin').write_bytes(b'0')
    with pytest.raises(ModelLoadError, match='expected a .onnx or .pt2'):
        resolve_model_path(str(tmp_path / 'weights.bin'))
    with pytest.raises(ModelLoadError, match='not a regular file'):
        resolve_model_path(str(tmp_path))


def test_spec_naming_missing_tensors_is_refused(affine_onnx):
    with pytest.raises(ModelLoadError, match='lacks'):
        open_model(str(affine_onnx), 'onnxruntime', spec_overrides={'output_name': 'nope'})


def test_torch_backend_matches_onnxruntime(tmp_path):
    torch = pytest.importorskip('torch')
    from depth_nodes.runtime.torch_engine import save_program

    conv = torch.nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, 1.0, 1.5]).reshape(1, 3, 1, 1))
        conv.bias.fill_(0.25)
    onnx_path = write_affine_model(tmp_path / 'm.onnx', SPEC)
    save_program(conv, [torch.zeros(1, 3, 24, 32)], tmp_path / 'm.pt2', SPEC.to_json(),
                 ['image'], ['depth'])
    image = np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    by_torch = MonoDepthEstimator(open_model(str(onnx_path), 'torch')).estimate(image, 'rgb8')
    by_ort = MonoDepthEstimator(open_model(str(onnx_path), 'onnxruntime')).estimate(image, 'rgb8')
    np.testing.assert_allclose(by_torch.depth, by_ort.depth, rtol=1e-5)
    tensor = image_to_tensor(image, 'rgb8', SPEC)
    np.testing.assert_allclose(np.log(by_ort.depth), affine_reference(tensor), atol=1e-5)


def test_torch_backend_without_program_explains(tmp_path, affine_onnx):
    pytest.importorskip('torch')
    with pytest.raises(ModelLoadError, match='torch.export program'):
        open_model(str(affine_onnx), 'torch')
