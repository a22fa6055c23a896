"""The TensorRT path against fakes of the TensorRT 10 bindings (test/fixtures/fake_tensorrt.py).

Each test reproduces a finding of issue 20 that the GPU-only tests could not catch here:
unsupported TensorRT versions, TF32 in fp32 builds, the cache key, partial calibration
tables, the INT8 remedy command, --check-only without onnx, and errors that escaped the
clean ModelLoadError path.
"""
import json
import re
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures import fake_tensorrt
from fixtures.models import write_affine_model, write_determinant_model

from depth_nodes import build_engine
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime import tensorrt_engine
from depth_nodes.runtime.backends import resolve_backend
from depth_nodes.runtime.engine import EngineOptions, ModelLoadError
from depth_nodes.runtime.model import open_model

SPEC = ModelSpec(method='affine', input_height=4, input_width=6, mean=(0.5, 0.5, 0.5),
                 std=(0.25, 0.25, 0.25))
NEEDS = 'depth_nodes needs TensorRT >= 10.3, < 11'


@pytest.fixture
def onnx_model(tmp_path):
    (tmp_path / 'models').mkdir()
    return write_affine_model(tmp_path / 'models' / 'affine.onnx', SPEC)


@pytest.fixture
def gpu(monkeypatch):
    fake_tensorrt.install_cuda(monkeypatch)


def images(directory, count, broken_at=None):
    directory.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        path = directory / f'{i:02d}.png'
        if i == broken_at:
            path.write_bytes(b'not a png')
        else:
            cv2.imwrite(str(path), rng.integers(0, 256, (4, 6, 3), dtype=np.uint8))
    return directory


def open_engine(path, cache_dir, **options):
    return tensorrt_engine.TensorRTEngine(path, EngineOptions(engine_cache_dir=str(cache_dir),
                                                              **options))


# -- supported versions ------------------------------------------------------------------------
@pytest.mark.parametrize('version, supported', [
    ('8.6.2.3', False), ('10.0.1.6', False), ('10.3.0.26', True), ('10.16.0.72', True),
    ('11.0.0.1', False)])
def test_availability_accepts_tensorrt_10_3_to_10_x_only(monkeypatch, gpu, version, supported):
    fake_tensorrt.install(monkeypatch, version)
    expected = (True, '') if supported else (
        False, f'TensorRT {version} is not supported ({NEEDS})')
    assert tensorrt_engine.availability() == expected


@pytest.mark.parametrize('version', ['11.0.0.1', '8.6.2.3'])
def test_auto_falls_back_to_onnxruntime_saying_why_and_tensorrt_is_a_clean_error(
        monkeypatch, gpu, onnx_model, version):
    """Before: auto picked TensorRT 11 / 8.6 and the node died with an AttributeError or a
    parser error, also on a parameter-triggered reload (which catches ModelLoadError)."""
    fake_tensorrt.install(monkeypatch, version)
    reason = f'TensorRT {version} is not supported ({NEEDS})'
    assert resolve_backend('auto') == ('onnxruntime', f'auto: {reason}, using ONNX Runtime')
    model = open_model(str(onnx_model), 'auto')
    assert model.engine.backend == 'onnxruntime' and reason in model.backend_reason
    with pytest.raises(ModelLoadError) as error:
        open_model(str(onnx_model), 'tensorrt')
    assert str(error.value) == (f"cannot load model '{onnx_model}': backend tensorrt is "
                                f'unavailable: {reason}')


def test_builder_refuses_an_unsupported_tensorrt_before_touching_its_api(monkeypatch,
                                                                         onnx_model):
    fake_tensorrt.install(monkeypatch, '11.0.0.1')      # no BuilderFlag.FP16 there
    with pytest.raises(tensorrt_engine.TensorRTBuildError,
                       match=re.escape(f'TensorRT 11.0.0.1 is not supported ({NEEDS})')):
        tensorrt_engine.build_serialized_engine(onnx_model, 'fp16')


def test_tensorrt_8_6_implicit_batch_is_what_the_fake_parser_refuses(onnx_model):
    """The fake reproduces 8.6: create_network(0) is implicit batch and the parser refuses
    it; that is why 8.6 is refused up front."""
    trt = fake_tensorrt.make_module('8.6.2.3')
    network = trt.Builder(trt.Logger()).create_network(0)
    parser = trt.OnnxParser(network, trt.Logger())
    assert parser.parse_from_file(str(onnx_model)) is False
    assert parser.get_error(0).code() == trt.ErrorCode.INVALID_GRAPH


# -- building ---------------------------------------------------------------------------------
@pytest.mark.parametrize('precision, flags', [('fp32', []), ('fp16', ['FP16'])])
def test_builds_clear_tf32_so_fp32_matches_onnxruntime(monkeypatch, onnx_model, precision,
                                                       flags):
    calls = []
    fake_tensorrt.install(monkeypatch, log=calls)
    engine = tensorrt_engine.build_serialized_engine(onnx_model, precision)
    assert ('create_network', 0) in calls
    assert json.loads(engine)['flags'] == flags            # TF32 (on by default) cleared


def test_float16_stored_weights_reach_the_parser_as_float32_constants(monkeypatch, tmp_path):
    """A model exported with --weights float16 (FLOAT16 initializer -> Cast) is parsed as the
    float32 graph: no Cast left, each weight the float16 value as FLOAT; a model without
    float16 weights is parsed from its file as before."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    weight = np.linspace(-1, 1, 3 * 6 * 2, dtype=np.float32).reshape(1, 3, 6, 2) / 3
    graph = helper.make_graph(
        [helper.make_node('Cast', ['w_float16'], ['w'], to=TensorProto.FLOAT),
         helper.make_node('MatMul', ['image', 'w'], ['depth'])], 'half',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 4, 6])],
        [helper.make_tensor_value_info('depth', TensorProto.FLOAT, [1, 3, 4, 2])],
        [numpy_helper.from_array(weight.astype(np.float16), 'w_float16')])
    path = tmp_path / 'half.onnx'
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    calls = []
    fake_tensorrt.install(monkeypatch, log=calls)
    tensorrt_engine.build_serialized_engine(path)
    parsed = [model for call, model in calls if call == 'parse']
    assert len(parsed) == 1 and not any(c[0] == 'parse_from_file' for c in calls)
    assert [n.op_type for n in parsed[0].graph.node] == ['MatMul']
    (stored,) = parsed[0].graph.initializer
    assert stored.name == 'w' and stored.data_type == TensorProto.FLOAT
    np.testing.assert_array_equal(numpy_helper.to_array(stored),
                                  weight.astype(np.float16).astype(np.float32))
    calls.clear()
    plain = write_affine_model(tmp_path / 'affine.onnx', SPEC)
    tensorrt_engine.build_serialized_engine(plain)
    assert ('parse_from_file', str(plain)) in calls


def test_the_shipped_float16_pix2pix_folds_to_the_same_outputs():
    import onnx
    import onnxruntime as ort
    path = Path(__file__).resolve().parents[2] / 'models' / 'pix2pix_synthetic.onnx'
    folded = tensorrt_engine.float16_weights_folded(path)
    assert folded is not None
    assert 'Cast' not in {n.op_type for n in onnx.load_from_string(folded).graph.node}
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    outputs = [ort.InferenceSession(model, providers=['CPUExecutionProvider'])
               .run(None, {'image': image})[0] for model in (str(path), folded)]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-6)


def test_parser_errors_name_the_node_with_the_enum_error_code(monkeypatch, tmp_path):
    fake_tensorrt.install(monkeypatch)
    path = write_determinant_model(tmp_path / 'det.onnx')
    with pytest.raises(tensorrt_engine.TensorRTBuildError) as error:
        tensorrt_engine.build_serialized_engine(path)
    assert re.search(r"  - node 'head/determinant' \(Det\): ErrorCode.UNSUPPORTED_NODE: no "
                     'importer registered for op: Det', str(error.value))


def test_a_build_returning_none_is_a_build_error(monkeypatch, onnx_model):
    fake_tensorrt.install(monkeypatch, build_fails=True)
    with pytest.raises(tensorrt_engine.TensorRTBuildError, match='could not build an engine'):
        tensorrt_engine.build_serialized_engine(onnx_model)


# -- the engine and its cache key -------------------------------------------------------------
def test_cache_key_holds_sm_count_and_builder_settings(monkeypatch, gpu, onnx_model, tmp_path):
    fake_tensorrt.install(monkeypatch)
    first = open_engine(onnx_model, tmp_path / 'cache')
    assert first.cached.status == 'miss' and first.input_shapes == {'image': (1, 3, 4, 6)}
    sidecar = json.loads(first.cached.engine_path.with_suffix('.json').read_text())
    assert sidecar['key']['sm_count'] == '16'
    assert sidecar['key']['builder_settings'] == 'tf32=off,workspace_mb=1024'
    assert sidecar['key']['tensorrt_version'] == '10.3.0.26'
    assert '(sm 8.7, 16 SMs)' in first.describe()
    assert open_engine(onnx_model, tmp_path / 'cache').cached.status == 'hit'
    # An Orin module with 8 SMs: same name and capability, its own engine; both kept.
    fake_tensorrt.install_cuda(monkeypatch, fake_tensorrt.SimpleNamespace(
        name='Orin', major=8, minor=7, multi_processor_count=8))
    assert open_engine(onnx_model, tmp_path / 'cache').cached.status == 'miss'
    assert len(list((tmp_path / 'cache').glob('*.engine'))) == 2


def test_two_tensorrt_versions_sharing_a_cache_keep_their_engines(
        monkeypatch, gpu, onnx_model, tmp_path):
    statuses = []
    for version in ('10.3.0.26', '10.7.0.23', '10.3.0.26', '10.7.0.23'):
        fake_tensorrt.install(monkeypatch, version)
        statuses.append(open_engine(onnx_model, tmp_path / 'cache').cached.status)
    assert statuses == ['miss', 'miss', 'hit', 'hit']


def test_engine_that_deserialises_to_none_is_rebuilt(monkeypatch, gpu, onnx_model, tmp_path):
    fake_tensorrt.install(monkeypatch)
    path = open_engine(onnx_model, tmp_path / 'cache').cached.engine_path
    runtime = sys.modules['tensorrt'].Runtime
    monkeypatch.setattr(runtime, 'deserialize_cuda_engine', lambda self, data: None)
    with pytest.raises(ModelLoadError, match='the engine just built for affine.onnx does not '
                                             'deserialise'):
        open_engine(onnx_model, tmp_path / 'cache')
    monkeypatch.undo()
    fake_tensorrt.install_cuda(monkeypatch)
    fake_tensorrt.install(monkeypatch)
    assert open_engine(onnx_model, tmp_path / 'cache').cached.engine_path == path


def test_bf16_engine_output_is_a_clean_load_error(monkeypatch, gpu, onnx_model, tmp_path):
    fake_tensorrt.install(monkeypatch, output_dtype=fake_tensorrt.DataType.BF16)
    with pytest.raises(ModelLoadError) as error:
        open_engine(onnx_model, tmp_path / 'cache')
    assert str(error.value) == (f"cannot load model '{onnx_model}': engine tensor 'depth' is "
                                'DataType.BF16, which has no numpy type: export the model with '
                                'float32 (or float16) inputs and outputs')


def test_cuda_out_of_memory_is_a_clean_load_error(monkeypatch, gpu, onnx_model, tmp_path):
    import torch
    fake_tensorrt.install(monkeypatch)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
    monkeypatch.setattr(torch, 'empty', out_of_memory)
    with pytest.raises(ModelLoadError) as error:
        open_model(str(onnx_model), 'tensorrt', EngineOptions(engine_cache_dir=str(tmp_path)))
    assert str(error.value).endswith('TensorRT or CUDA failed: OutOfMemoryError: CUDA out of '
                                     'memory. Tried to allocate 2.00 GiB')


def test_int8_calibration_of_a_dynamic_shape_is_a_value_error(monkeypatch):
    fake_tensorrt.install(monkeypatch)
    with pytest.raises(ValueError, match=re.escape(
            "INT8 calibration needs static input shapes; dynamic: {'image': (-1, 3, 4, 6)}")):
        tensorrt_engine.make_entropy_calibrator((), {'image': (-1, 3, 4, 6)}, device='cpu')


# -- INT8 calibration tables ------------------------------------------------------------------
def cli(argv, capsys):
    status = build_engine.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_failed_calibration_leaves_no_table_and_no_engine(monkeypatch, gpu, onnx_model,
                                                          tmp_path, capsys):
    """Before: an image failing midway ended calibration; TensorRT wrote a table of the
    batches so far, and the next run used it silently."""
    fake_tensorrt.install(monkeypatch)
    cache = tmp_path / 'cache'
    status, _, err = cli(['--onnx', onnx_model, '--precision', 'int8', '--calibration-dir',
                          images(tmp_path / 'bad', 4, broken_at=2), '--engine-cache-dir', cache,
                          '--output', tmp_path / 'm.engine'], capsys)
    assert status == 1
    assert re.search(r"INT8 calibration failed: ValueError: calibration image '.*02.png' cannot "
                     'be read .*; no calibration table was written', err)
    assert not (tmp_path / 'm.engine').exists()
    assert tensorrt_engine.find_calibration_table(onnx_model, cache) is None
    assert list(cache.glob('*.engine')) == []


def test_calibrated_table_and_engine_are_found_by_the_node(monkeypatch, gpu, onnx_model,
                                                           tmp_path, capsys):
    fake_tensorrt.install(monkeypatch)
    cache = tmp_path / 'cache'
    status, out, _ = cli(['--onnx', onnx_model, '--precision', 'int8', '--calibration-dir',
                          images(tmp_path / 'good', 5), '--engine-cache-dir', cache,
                          '--output', tmp_path / 'm.engine'], capsys)
    assert status == 0 and '(5 images used)' in out
    table = tensorrt_engine.find_calibration_table(onnx_model, cache)
    assert table.parent == cache and table.read_text().endswith('batches: 5\n')
    assert fake_tensorrt.engine_payload(tmp_path / 'm.engine')['calibration'] == \
        table.read_text()
    engine = open_engine(onnx_model, cache, precision='int8')
    assert engine.cached.status == 'hit'        # the node uses the CLI's engine: same key


def test_new_calibration_data_replaces_an_existing_table_with_a_warning(
        monkeypatch, gpu, onnx_model, tmp_path, capsys):
    """Before: an existing table silently overrode --calibration-dir."""
    fake_tensorrt.install(monkeypatch)
    cache = tmp_path / 'cache'
    argv = ['--onnx', onnx_model, '--precision', 'int8', '--engine-cache-dir', cache,
            '--output', tmp_path / 'm.engine', '--calibration-dir']
    assert cli(argv + [images(tmp_path / 'three', 3)], capsys)[0] == 0
    table = tensorrt_engine.find_calibration_table(onnx_model, cache)
    status, _, err = cli(argv + [images(tmp_path / 'six', 6)], capsys)
    assert status == 0
    assert f"warning: calibrating anew: the new table '{table}' replaces" in err
    assert table.read_text().endswith('batches: 6\n')
    # Without calibration data the table is reused, no images asked for.
    status, out, _ = cli(argv[:-1], capsys)
    assert status == 0 and f'INT8 calibration table read from {table}' in out


def test_a_table_tensorrt_refuses_is_a_failure_and_nothing_is_written(tmp_path):
    table = tmp_path / 'old.int8.calib'
    table.write_bytes(b'TRT-8601-EntropyCalibration2\n')
    feed = tensorrt_engine.CalibrationFeed((), table)
    assert feed.read_table() == table.read_bytes()
    assert feed.next_feeds() is None             # TensorRT asked for images after all
    assert tensorrt_engine.calibration_failure(feed) == (
        f"TensorRT did not accept the calibration table '{table}' (another TensorRT or "
        'model?) and no calibration images were given')
    with pytest.raises(tensorrt_engine.TensorRTBuildError):
        tensorrt_engine.save_calibration_table(feed, tmp_path / 'new.int8.calib')
    assert not (tmp_path / 'new.int8.calib').exists()


def test_the_node_int8_remedy_is_a_working_command(monkeypatch, gpu, onnx_model, tmp_path,
                                                   capsys):
    """Before: the command in the node's error lacked --output (the CLI exited 2) and
    --engine-cache-dir (the table went where the node did not look)."""
    fake_tensorrt.install(monkeypatch)
    cache = tmp_path / 'node cache'
    with pytest.raises(ModelLoadError) as error:
        open_engine(onnx_model, cache, precision='int8')
    command = re.search('create it once with `([^`]+)`', str(error.value)).group(1)
    argv = shlex.split(command)
    assert argv[:3] == ['python3', '-m', 'depth_nodes.build_engine']
    argv = [str(images(tmp_path / 'images', 4)) if a == '<images>' else a for a in argv[3:]]
    cache.mkdir()
    assert build_engine.main(argv) == 0, capsys.readouterr().err
    assert open_engine(onnx_model, cache, precision='int8').cached.status == 'hit'


# -- the CLI's static check ---------------------------------------------------------------------
def test_check_only_without_onnx_says_it_cannot_check(monkeypatch, onnx_model, capsys):
    """Before: "no TensorRT 10 compatibility problems found", exit 0, without onnx."""
    monkeypatch.setitem(sys.modules, 'onnx', None)          # import onnx -> ImportError
    monkeypatch.delitem(sys.modules, 'depth_nodes.runtime.onnx_compat', raising=False)
    status, out, err = cli(['--onnx', onnx_model, '--check-only'], capsys)
    assert status == 1 and out == ''
    assert err == (f'{onnx_model}: cannot check TensorRT compatibility: the onnx package is not '
                   'installed (pip install onnx)\n')
