"""TensorRT for real: build tiny engines, run them, compare with ONNX Runtime; the real cache.

Needs TensorRT >= 10.3, < 11 (Python bindings) and a CUDA GPU with PyTorch's CUDA build;
everywhere else those tests are skipped with the reason, and only the clean refusal of backend
tensorrt runs (test_tensorrt_fakes.py covers the rest against fakes of the bindings).
The model is the affine fixture (a 1x1 convolution), so expected outputs are known by hand.
"""
import numpy as np
import pytest
from fixtures.models import affine_reference, write_affine_model, write_determinant_model
from onnx import helper, TensorProto

from depth_nodes.calibration_images import calibration_batches_from_directory
from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from depth_nodes.core.preprocess import image_to_tensor
from depth_nodes.runtime import tensorrt_engine

AVAILABLE, WHY_NOT = tensorrt_engine.availability()
needs_tensorrt = pytest.mark.skipif(not AVAILABLE, reason=f'TensorRT runtime tests need '
                                                          f'{tensorrt_engine.SUPPORTED_TEXT} and '
                                                          f'a CUDA GPU: {WHY_NOT}')

SPEC = ModelSpec(method='affine', input_height=48, input_width=64, mean=(0.5, 0.5, 0.5),
                 std=(0.25, 0.25, 0.25), output_kind='log_depth', min_depth=1e-3,
                 max_depth=1e3)
# fp16 has an 11-bit significand: |x| <= ~6 here, so outputs agree to ~1e-2.
FP16_TOLERANCE = dict(rtol=1e-2, atol=1e-2)


@pytest.fixture(scope='module')
def affine_onnx(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('model') / 'affine.onnx', SPEC)


@pytest.fixture
def tensor():
    return np.random.default_rng(7).normal(size=(1, 3, 48, 64)).astype(np.float32)


def onnxruntime_output(path, tensor):
    from depth_nodes.runtime.onnxruntime_engine import OnnxRuntimeEngine
    return OnnxRuntimeEngine(path).run({'image': tensor})['depth']


def open_engine(path, cache_dir, **options):
    from depth_nodes.runtime.engine import EngineOptions
    return tensorrt_engine.TensorRTEngine(path, EngineOptions(engine_cache_dir=str(cache_dir),
                                                              **options))


@needs_tensorrt
@pytest.mark.parametrize('precision, tolerance', [('fp32', dict(rtol=1e-5, atol=1e-5)),
                                                  ('fp16', FP16_TOLERANCE)])
def test_engine_output_matches_onnxruntime_and_the_hand_computed_value(
        affine_onnx, tmp_path, tensor, precision, tolerance):
    engine = open_engine(affine_onnx, tmp_path, precision=precision)
    assert engine.input_shapes == {'image': (1, 3, 48, 64)}
    assert engine.output_names == ('depth',)
    assert ModelSpec.from_json(engine.metadata[METADATA_KEY]) == SPEC
    out = engine.run({'image': tensor})['depth']
    assert out.shape == (1, 1, 48, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out, onnxruntime_output(affine_onnx, tensor), **tolerance)
    np.testing.assert_allclose(out[0, 0], affine_reference(tensor), **tolerance)
    # Buffers are reused: a second input must not see anything of the first.
    second = engine.run({'image': -tensor})['depth']
    np.testing.assert_allclose(second[0, 0], affine_reference(-tensor), **tolerance)


@needs_tensorrt
def test_cache_round_trip_with_the_real_builder(affine_onnx, tmp_path, tensor):
    first = open_engine(affine_onnx, tmp_path, precision='fp16')
    assert first.cached.status == 'miss' and first.build_s > 0
    assert 'engine built in' in first.describe() and tensorrt_engine.tensorrt_version() in \
        first.describe()
    second = open_engine(affine_onnx, tmp_path, precision='fp16')
    assert second.cached.status == 'hit' and second.build_s is None
    assert second.cached.engine_path == first.cached.engine_path
    np.testing.assert_array_equal(first.run({'image': tensor})['depth'],
                                  second.run({'image': tensor})['depth'])
    assert open_engine(affine_onnx, tmp_path, precision='fp16',
                       force_engine_update=True).cached.status == 'forced'
    path = second.cached.engine_path
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    rebuilt = open_engine(affine_onnx, tmp_path, precision='fp16')
    assert rebuilt.cached.status == 'corrupt' and 'truncated' in rebuilt.cached.reason
    assert open_engine(affine_onnx, tmp_path, precision='fp32').cached.status == 'miss'
    assert sorted(p.name.split('.')[1] for p in tmp_path.glob('*.engine')) == ['fp16', 'fp32']
    assert list(tmp_path.glob('*.timing'))        # the kernel timing cache was written


@needs_tensorrt
def test_open_model_with_the_tensorrt_backend_estimates_depth(affine_onnx, tmp_path):
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.estimator import MonoDepthEstimator
    from depth_nodes.runtime.model import open_model
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    options = EngineOptions(precision='fp16', engine_cache_dir=str(tmp_path))
    trt_depth = MonoDepthEstimator(open_model(str(affine_onnx), 'tensorrt', options)) \
        .estimate(image, 'rgb8').depth
    ort_depth = MonoDepthEstimator(open_model(str(affine_onnx), 'onnxruntime')) \
        .estimate(image, 'rgb8').depth
    np.testing.assert_allclose(trt_depth, ort_depth, rtol=2e-2)   # exp() of an fp16 log depth


@needs_tensorrt
def test_parser_error_names_the_node(tmp_path):
    path = write_determinant_model(tmp_path / 'det.onnx')
    with pytest.raises(tensorrt_engine.TensorRTBuildError,
                       match="rejected .*det.onnx.*\n  - node 'head/determinant'"):
        tensorrt_engine.build_serialized_engine(path)


@needs_tensorrt
def test_dynamic_input_shape_is_refused(tmp_path):
    graph = helper.make_graph(
        [helper.make_node('Relu', ['image'], ['depth'], name='relu')], 'g',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, 8, 8])],
        [helper.make_tensor_value_info('depth', TensorProto.FLOAT, ['batch', 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    path = tmp_path / 'dynamic.onnx'
    path.write_bytes(model.SerializeToString())
    with pytest.raises(tensorrt_engine.TensorRTBuildError, match="input 'image' .* dynamic"):
        tensorrt_engine.build_serialized_engine(path)


@needs_tensorrt
def test_int8_calibrates_on_images_then_reuses_the_table(affine_onnx, tmp_path):
    import cv2
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        cv2.imwrite(str(images / f'{i:02d}.png'),
                    rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    # A frame like the calibration images, pre-processed as the node does.
    tensor = image_to_tensor(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 'rgb8', SPEC)
    table = tmp_path / 'affine.int8.calib'
    batches = calibration_batches_from_directory(images, SPEC)
    calibrator = tensorrt_engine.make_entropy_calibrator(batches, {'image': (1, 3, 48, 64)})
    engine_bytes = tensorrt_engine.build_serialized_engine(affine_onnx, 'int8',
                                                           calibrator=calibrator)
    assert not table.exists()               # written only when the caller saves it
    assert tensorrt_engine.save_calibration_table(calibrator, table)
    assert calibrator.feed.batches_used == 16 and table.stat().st_size > 0
    again = tensorrt_engine.make_entropy_calibrator((), {'image': (1, 3, 48, 64)}, table)
    tensorrt_engine.build_serialized_engine(affine_onnx, 'int8', calibrator=again)
    assert again.feed.batches_used == 0 and again.feed.table_read   # table read, no images
    assert len(engine_bytes) > 0
    # A node finds a table beside the model and runs int8: 8-bit steps over the output range.
    model_table = affine_onnx.with_suffix('.int8.calib')
    model_table.write_bytes(table.read_bytes())
    try:
        engine = open_engine(affine_onnx, tmp_path / 'cache', precision='int8')
        out = engine.run({'image': tensor})['depth'][0, 0]
    finally:
        model_table.unlink()
    reference = affine_reference(tensor)
    assert np.max(np.abs(out - reference)) < 0.05 * np.ptp(reference)


@pytest.mark.skipif(AVAILABLE, reason='TensorRT and a GPU are present')
def test_backend_tensorrt_without_tensorrt_is_a_clear_load_error(affine_onnx):
    from depth_nodes.runtime.engine import ModelLoadError
    from depth_nodes.runtime.model import open_model
    with pytest.raises(ModelLoadError) as error:
        open_model(str(affine_onnx), 'tensorrt')
    assert str(error.value) == (f"cannot load model '{affine_onnx}': backend tensorrt is "
                                f'unavailable: {WHY_NOT}')
