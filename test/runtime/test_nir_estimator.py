"""NirDepthEstimator: NIR -> translation model -> pseudo-RGB -> RGB depth model -> metres.

Hand-built ONNX models with known outputs: the translation model is a 1x1 convolution
1 -> 3 channels (pseudo-RGB_c = w_c x + b_c on the normalised NIR x), the depth model the
affine fixture on the pseudo-RGB (a disparity as a fraction of the width), so every number
below is computed by hand from the pixel values.
"""
import numpy as np
import pytest
from fixtures.models import write_affine_model, write_translation_model

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.nir_estimator import NirDepthEstimator, translated_image_to_rgb8

CTN_SPEC = ModelSpec(method='nir_ctn', input_kind='nir', input_height=16, input_width=32,
                     input_channels=1, mean=(0.5,), std=(0.5,), output_name='pseudo_rgb',
                     output_kind='translated_image', output_range=(-1.0, 1.0))
CTN_WEIGHTS, CTN_BIAS = (0.5, -0.5, 1.0), (0.0, 0.25, -0.5)
# The DPN stand-in: disparity fraction d = 0.1 (R + G + B) / 255 of a rig with a 0.5 m
# baseline and fx / W = 0.8.
DPN_SPEC = ModelSpec(method='dpn', input_kind='rgb', input_height=8, input_width=16,
                     output_name='disparity', output_kind='disparity_fraction', baseline=0.5,
                     focal_fraction=0.8, min_depth=0.1, max_depth=100.0)
CAM = CameraIntrinsics(64, 48, fx=60.0, fy=60.0, cx=31.5, cy=23.5)


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp('nir_models')
    ctn = write_translation_model(root / 'ctn.onnx', CTN_SPEC, CTN_WEIGHTS, CTN_BIAS)
    dpn = write_affine_model(root / 'dpn.onnx', DPN_SPEC, weights=(0.1, 0.1, 0.1), bias=0.0)
    return ctn, dpn


def estimator(models, output_resolution='input'):
    ctn, dpn = models
    return NirDepthEstimator(open_model(str(ctn), 'onnxruntime'),
                             open_model(str(dpn), 'onnxruntime'), output_resolution)


# NIR level 153: x = (153 / 255 - 0.5) / 0.5 = 0.2 -> pseudo-RGB (0.1, 0.15, -0.3) in [-1, 1]
# -> 8-bit rint(127.5 (v + 1)) = (rint(140.25), rint(146.625), rint(89.25)) = (140, 147, 89).
PSEUDO_RGB = (140, 147, 89)
DISPARITY = 0.1 * (140 + 147 + 89) / 255          # 0.147451 of the width


def test_translated_image_to_rgb8_maps_the_output_range_onto_0_255():
    raw = np.array([-1.0, 0.0, 1.0, 1.5, -2.0, -0.5], np.float32).reshape(1, 3, 1, 2)
    rgb = translated_image_to_rgb8(raw, (-1.0, 1.0))
    assert rgb.shape == (1, 1, 2, 3) and rgb.dtype == np.uint8
    # channel 0 = (-1, 0), channel 1 = (1, 1.5), channel 2 = (-2, -0.5): round half to even.
    np.testing.assert_array_equal(rgb[0, 0], [[0, 255, 0], [128, 255, 64]])
    np.testing.assert_array_equal(translated_image_to_rgb8(np.full((3, 1, 1), 0.5),
                                                           (0.0, 1.0))[0, 0], [128] * 3)


def test_two_stage_depth_from_hand_computed_pseudo_rgb(models):
    est = estimator(models)
    nir = np.full((48, 64), 153, np.uint8)
    result = est.estimate(nir, 'mono8', CAM)
    assert est.two_stage and est.spec.output_kind == 'disparity_fraction'
    pseudo = result.extras['pseudo_rgb']
    assert pseudo.shape == (16, 32, 3) and pseudo.dtype == np.uint8    # the CTN's size
    assert (pseudo == np.array(PSEUDO_RGB, np.uint8)).all()
    # depth = (fx / W) B / d with the NIR camera's fx: 60 / 64 * 0.5 / 0.147451 = 3.179 m.
    assert result.depth.shape == (48, 64)
    np.testing.assert_allclose(result.depth, 60 / 64 * 0.5 / DISPARITY, rtol=1e-5)
    assert result.depth[0, 0] == pytest.approx(3.1790, abs=1e-4)
    assert result.camera == CAM
    assert result.inference_s == pytest.approx(result.extras['translation_s']
                                               + result.extras['depth_s'])


def test_mono16_input_is_scaled_like_mono8(models):
    est = estimator(models)
    eight = est.estimate(np.full((48, 64), 153, np.uint8), 'mono8', CAM)
    sixteen = est.estimate(np.full((48, 64), 153 * 257, np.uint16), 'mono16', CAM)
    np.testing.assert_array_equal(sixteen.extras['pseudo_rgb'], eight.extras['pseudo_rgb'])
    np.testing.assert_allclose(sixteen.depth, eight.depth, rtol=1e-6)


def test_metric_scale_from_baseline_focal_length_and_depth_scale(models):
    est = estimator(models)
    nir = np.full((48, 64), 153, np.uint8)
    # No camera_info: the depth model's training rig fx / W = 0.8.
    np.testing.assert_allclose(est.estimate(nir, 'mono8').depth, 0.8 * 0.5 / DISPARITY,
                               rtol=1e-5)
    # A node baseline replaces the rig's: 1.2 m.
    np.testing.assert_allclose(est.estimate(nir, 'mono8', CAM, baseline=1.2).depth,
                               60 / 64 * 1.2 / DISPARITY, rtol=1e-5)
    # depth_scale multiplies; the valid range applies to the scaled depth.
    scaled = est.estimate(nir, 'mono8', CAM, depth_scale=2.0, depth_range=(0.1, 10.0)).depth
    np.testing.assert_allclose(scaled, 2 * 60 / 64 * 0.5 / DISPARITY, rtol=1e-5)
    assert np.isnan(est.estimate(nir, 'mono8', CAM, depth_scale=2.0,
                                 depth_range=(0.1, 5.0)).depth).all()       # 6.36 m > 5 m
    with pytest.raises(ValueError, match='depth_scale must be > 0'):
        est.estimate(nir, 'mono8', CAM, depth_scale=0.0)


def test_a_varying_image_gives_the_pixelwise_chain(models):
    """Left half dark, right half bright: each half gets its own hand-computed depth."""
    est = estimator(models, output_resolution='model')
    nir = np.zeros((16, 32), np.uint8)
    nir[:, 16:] = 255      # x = -1 -> (-0.5, 0.75, -1.5); x = 1 -> (0.5, -0.25, 0.5)
    result = est.estimate(nir, 'mono8')
    np.testing.assert_array_equal(result.extras['pseudo_rgb'][0, 0], [64, 223, 0])
    np.testing.assert_array_equal(result.extras['pseudo_rgb'][0, -1], [191, 96, 191])
    assert result.depth.shape == (8, 16)    # the depth model's output size
    dark, bright = 0.1 * (64 + 223) / 255, 0.1 * (191 + 96 + 191) / 255
    assert result.depth[4, 2] == pytest.approx(0.8 * 0.5 / dark, rel=1e-5)
    assert result.depth[4, 13] == pytest.approx(0.8 * 0.5 / bright, rel=1e-5)


def test_one_stage_nir_depth_model_runs_alone(models, tmp_path):
    spec = ModelSpec(method='nir_depth', input_kind='nir', input_height=8, input_width=16,
                     input_channels=1, output_kind='metric_depth', min_depth=0.1,
                     max_depth=100.0, mean=(0.0,), std=(1.0,))
    path = write_affine_model(tmp_path / 'nir_depth.onnx', spec, weights=(4.0,), bias=1.0)
    est = NirDepthEstimator(open_model(str(path), 'onnxruntime'))
    result = est.estimate(np.full((48, 64), 51, np.uint8), 'mono8', CAM)
    assert not est.two_stage and 'pseudo_rgb' not in result.extras
    np.testing.assert_allclose(result.depth, 4.0 * 51 / 255 + 1.0, rtol=1e-6)   # 1.8 m
    direct = MonoDepthEstimator(open_model(str(path), 'onnxruntime')).estimate(
        np.full((48, 64), 51, np.uint8), 'mono8', CAM)
    np.testing.assert_array_equal(result.depth, direct.depth)


def test_rgb_depth_model_alone_reads_the_gray_nir(models):
    """model:=<RGB depth model> depth_model:='' is the 'gray NIR straight to the DPN' path:
    the NIR plane goes to all three channels: d = 0.1 * 3 * 153 / 255 = 0.18."""
    _, dpn = models
    est = NirDepthEstimator(open_model(str(dpn), 'onnxruntime'))
    result = est.estimate(np.full((48, 64), 153, np.uint8), 'mono8', CAM)
    assert not est.two_stage
    np.testing.assert_allclose(result.depth, 60 / 64 * 0.5 / (0.1 * 3 * 153 / 255), rtol=1e-5)


def test_wrong_model_pairs_are_refused_with_the_reason(models, tmp_path):
    ctn, dpn = models
    with pytest.raises(ValueError, match="'ctn.onnx' translates images .* depth_model"):
        NirDepthEstimator(open_model(str(ctn), 'onnxruntime'))
    with pytest.raises(ValueError, match="depth model 'ctn.onnx' takes nir input"):
        NirDepthEstimator(open_model(str(ctn), 'onnxruntime'), open_model(str(ctn),
                                                                          'onnxruntime'))
    with pytest.raises(ValueError, match="'dpn.onnx' is already a depth model"):
        NirDepthEstimator(open_model(str(dpn), 'onnxruntime'), open_model(str(dpn),
                                                                          'onnxruntime'))
    two = write_translation_model(tmp_path / 'two_channels.onnx', CTN_SPEC, CTN_WEIGHTS,
                                  CTN_BIAS, out_channels=2)
    est = NirDepthEstimator(open_model(str(two), 'onnxruntime'),
                            open_model(str(dpn), 'onnxruntime'))
    with pytest.raises(ValueError, match=r'shape \(1, 2, 16, 32\); expected \(1, 3, H, W\)'):
        est.estimate(np.zeros((16, 32), np.uint8), 'mono8')
    with pytest.raises(ModelLoadError, match='missing.onnx'):
        open_model(str(tmp_path / 'missing.onnx'), 'onnxruntime')
