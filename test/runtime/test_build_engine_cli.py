"""`python -m depth_nodes.build_engine`: arguments, messages, exit codes, calibration input.

Runs without TensorRT: argument validation, --check-only, the clear failure when TensorRT or
a GPU is missing, and the INT8 calibration feeds (the node's own pre-processing) are checked
here; building itself is covered by test_tensorrt_runtime.py where TensorRT exists.
"""
import hashlib
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from fixtures.models import write_affine_model, write_determinant_model

from depth_nodes import build_engine
from depth_nodes.calibration_images import calibration_batches_from_directory
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime import tensorrt_engine
from depth_nodes.runtime.tensorrt_engine import (calibration_cache_candidates,
                                                 format_parser_errors)
from training.calibration_feeds import sample_to_feeds

SPEC = ModelSpec(method='affine', input_height=4, input_width=6, mean=(0.5, 0.5, 0.5),
                 std=(0.25, 0.25, 0.25))
TENSORRT_HERE = tensorrt_engine.availability()[0]


@pytest.fixture
def onnx_model(tmp_path):
    return write_affine_model(tmp_path / 'affine.onnx', SPEC)


def parse_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        build_engine.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults(onnx_model, tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros'))
    args = build_engine.parse_args(['--onnx', str(onnx_model), '--output',
                                    str(tmp_path / 'a.engine')])
    assert (args.precision, args.workspace_mb, args.calibration_samples) == ('fp32', 1024, 500)
    assert args.engine_cache_dir == tmp_path / 'ros' / 'depth_nodes' / 'engines'
    assert (args.timing_cache, args.no_engine_cache, args.device_id) == (None, False, 0)


@pytest.mark.parametrize('extra, message', [
    (['--precision', 'fp8'], "argument --precision: invalid choice: 'fp8'"),
    (['--workspace-mb', '0'], 'argument --workspace-mb: must be > 0, got 0'),
    (['--workspace-mb', 'lots'], "argument --workspace-mb: 'lots' is not an integer"),
    (['--precision', 'int8', '--calibration-dir', 'a', '--calibration-dataset', 'b'],
     'argument --calibration-dataset: not allowed with argument --calibration-dir'),
    (['--precision', 'fp16', '--calibration-dataset', 'synthetic'],
     '--calibration-* options apply to --precision int8 only'),
    (['--precision', 'int8'], '--precision int8 needs calibration data'),
    (['--precision', 'int8', '--calibration-dir', '/no/such/images'],
     "--calibration-dir: '/no/such/images' is not a directory"),
    (['--engine-cache-dir', 'x', '--no-engine-cache'],
     'argument --no-engine-cache: not allowed with argument --engine-cache-dir'),
])
def test_bad_arguments_exit_2_saying_what_is_wrong(onnx_model, tmp_path, capsys, monkeypatch,
                                                   extra, message):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros'))
    err = parse_error(capsys, ['--onnx', str(onnx_model), '--output',
                               str(tmp_path / 'm.engine'), *extra])
    assert message in err


def test_missing_files_are_named(onnx_model, tmp_path, capsys):
    assert "--onnx: '/no/model.onnx' does not exist" in parse_error(
        capsys, ['--onnx', '/no/model.onnx', '--output', str(tmp_path / 'm.engine')])
    assert '--output is required' in parse_error(capsys, ['--onnx', str(onnx_model)])
    assert "--output: directory '/no/dir' does not exist" in parse_error(
        capsys, ['--onnx', str(onnx_model), '--output', '/no/dir/m.engine'])
    assert 'is a directory' in parse_error(capsys, ['--onnx', str(onnx_model), '--output',
                                                    str(tmp_path)])


def test_int8_calibration_table_one_place_for_the_cli_and_the_node(onnx_model, tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    cache = tmp_path / 'cache'
    args = build_engine.parse_args(['--onnx', str(onnx_model), '--output', str(tmp_path / 'e'),
                                    '--precision', 'int8', '--calibration-dir', str(images),
                                    '--engine-cache-dir', str(cache)])
    sha = hashlib.sha256(onnx_model.read_bytes()).hexdigest()
    in_cache = cache / f'affine.{sha[:16]}.int8.calib'
    # Calibration data: a new table, written to the engine cache, nothing read.
    assert (args.calibration_output, args.calibration_table) == (in_cache, None)
    # Without calibration data the CLI finds a table where the node looks: beside the model
    # (shipped), then the engine cache, which takes precedence.
    beside = onnx_model.with_suffix('.int8.calib')
    beside.write_bytes(b'TRT-1003-EntropyCalibration2\n')
    argv = ['--onnx', str(onnx_model), '--output', str(tmp_path / 'e'), '--precision', 'int8',
            '--engine-cache-dir', str(cache)]
    assert build_engine.parse_args(argv).calibration_table == beside
    assert tensorrt_engine.find_calibration_table(onnx_model, cache) == beside
    cache.mkdir()
    in_cache.write_bytes(b'TRT-1003-EntropyCalibration2\n')
    assert build_engine.parse_args(argv).calibration_table == in_cache
    assert tensorrt_engine.find_calibration_table(onnx_model, cache) == in_cache
    # New calibration data replaces both: the CLI names them in its warning.
    assert build_engine.existing_tables(args) == [in_cache, beside]


def test_calibration_table_candidates_the_cache_then_beside_the_model(onnx_model, tmp_path):
    sha = hashlib.sha256(onnx_model.read_bytes()).hexdigest()
    assert calibration_cache_candidates(onnx_model, tmp_path / 'cache') == [
        tmp_path / 'cache' / f'affine.{sha[:16]}.int8.calib', tmp_path / 'affine.int8.calib']


def test_calibration_dataset_outside_training_build_engine_says_where_it_works(
        onnx_model, tmp_path, capsys):
    err = parse_error(capsys, ['--onnx', str(onnx_model), '--output', str(tmp_path / 'e'),
                               '--precision', 'int8', '--calibration-dataset', 'synthetic'])
    assert 'run the same command as `python -m training.build_engine ...`' in err
    from training import build_engine as training_build_engine
    from training.calibration_feeds import dataset_calibration_feeds
    args = build_engine.parse_args(['--onnx', str(onnx_model), '--output', str(tmp_path / 'e'),
                                    '--precision', 'int8', '--calibration-dataset', 'synthetic',
                                    '--engine-cache-dir', str(tmp_path / 'c')],
                                   dataset_feeds=dataset_calibration_feeds)
    assert args.calibration_dataset == 'synthetic' and args.calibration_output is not None
    feeds = list(dataset_calibration_feeds('synthetic', SPEC, limit=2))
    assert len(feeds) == 2 and feeds[0]['image'].shape == (1, 3, 4, 6)
    if not TENSORRT_HERE:       # the arguments pass; building needs TensorRT
        assert training_build_engine.main(['--onnx', str(onnx_model), '--output',
                                           str(tmp_path / 'e'), '--precision', 'int8',
                                           '--calibration-dataset', 'synthetic']) == 1
        assert 'cannot build a TensorRT engine here' in capsys.readouterr().err


@pytest.mark.skipif(TENSORRT_HERE, reason='TensorRT and a GPU are present: the CLI builds')
def test_without_tensorrt_exits_1_with_a_clear_message(onnx_model, tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'depth_nodes.build_engine', '--onnx',
                           str(onnx_model), '--output', str(tmp_path / 'm.engine')],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    reason = tensorrt_engine.availability()[1]
    assert proc.stderr.startswith(f'error: cannot build a TensorRT engine here: {reason}.')
    assert 'needs TensorRT >= 10.3, < 11' in proc.stderr and 'docs/tensorrt.md' in proc.stderr
    assert not (tmp_path / 'm.engine').exists()


def test_check_only_passes_a_compatible_model(onnx_model, capsys):
    assert build_engine.main(['--onnx', str(onnx_model), '--check-only']) == 0
    assert 'no TensorRT 10 compatibility problems found' in capsys.readouterr().out


def test_check_only_fails_naming_the_offending_node(tmp_path, capsys):
    path = write_determinant_model(tmp_path / 'det.onnx')
    assert build_engine.main(['--onnx', str(path), '--check-only']) == 1
    err = capsys.readouterr().err
    assert '1 TensorRT compatibility problem(s)' in err
    assert '  - head/determinant (Det): not supported by the TensorRT 10 ONNX parser' in err


# -- parser errors as the builder reports them ------------------------------------------------
class FakeParserError(SimpleNamespace):
    """Stands in for trt.ParserError: the accessors are methods in the bindings."""

    def __getattribute__(self, name):
        value = object.__getattribute__(self, name)
        return (lambda: value) if name in ('node', 'node_name', 'node_operator', 'code',
                                           'desc') else value


def test_parser_errors_name_the_node_operator_code_and_reason():
    errors = [FakeParserError(node=3, node_name='decoder/up2', node_operator='Resize',
                              code='UNSUPPORTED_NODE', desc="cubic resize is unsupported"),
              FakeParserError(node=-1, node_name='', node_operator='',
                              code='INVALID_GRAPH', desc='opset 21 is too new')]
    assert format_parser_errors(errors).splitlines() == [
        "  - node 'decoder/up2' (Resize): UNSUPPORTED_NODE: cubic resize is unsupported",
        '  - model: INVALID_GRAPH: opset 21 is too new']


def test_parser_errors_without_node_name_use_the_graph_names():
    # TensorRT 8.x bindings report only the node index.
    error = SimpleNamespace(node=lambda: 1, code=lambda: 'UNSUPPORTED_NODE',
                            desc=lambda: 'no importer for Det')
    assert format_parser_errors([error], ['enc/conv', 'head/det']) == (
        "  - node 'head/det': UNSUPPORTED_NODE: no importer for Det")
    assert format_parser_errors([error]) == '  - node #1: UNSUPPORTED_NODE: no importer for Det'


# -- INT8 calibration feeds: the node's pre-processing on the calibration images -------------
def test_directory_images_become_the_tensors_the_node_would_feed(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    bgr = np.zeros((8, 12, 3), np.uint8)
    bgr[:] = (51, 102, 204)                       # B, G, R
    cv2.imwrite(str(images / 'b.png'), bgr)
    cv2.imwrite(str(images / 'a.png'), np.full((8, 12, 3), 255, np.uint8))
    (images / 'notes.txt').write_text('not an image')
    feeds = list(calibration_batches_from_directory(images, SPEC))
    assert len(feeds) == 2 and list(feeds[0]) == ['image']
    assert feeds[0]['image'].shape == (1, 3, 4, 6) and feeds[0]['image'].dtype == np.float32
    np.testing.assert_allclose(feeds[0]['image'], (1.0 - 0.5) / 0.25)          # a.png: white
    # b.png, in the model's RGB order after (x / 255 - 0.5) / 0.25:
    expected = [(204 / 255 - 0.5) / 0.25, (102 / 255 - 0.5) / 0.25, (51 / 255 - 0.5) / 0.25]
    np.testing.assert_allclose(feeds[1]['image'][0, :, 0, 0], expected, rtol=1e-6)
    assert len(list(calibration_batches_from_directory(images, SPEC, limit=1))) == 1


def test_sixteen_bit_mono_images_calibrate_a_nir_model(tmp_path):
    spec = ModelSpec(input_kind='nir', input_channels=1, input_height=2, input_width=2,
                     mean=(0.0,), std=(1.0,))
    cv2.imwrite(str(tmp_path / 'nir.png'), np.full((4, 4), 65535 // 5, np.uint16))
    (feed,) = calibration_batches_from_directory(tmp_path, spec)
    np.testing.assert_allclose(feed['image'], np.full((1, 1, 2, 2), 0.2), rtol=1e-6)


def test_calibration_directory_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="holds no images"):
        calibration_batches_from_directory(tmp_path, SPEC)
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match="calibration image '.*broken.png' cannot be read"):
        list(calibration_batches_from_directory(tmp_path, SPEC))
    stereo = ModelSpec(input_kind='stereo', input_names=('left', 'right'))
    with pytest.raises(ValueError, match="takes \\['left', 'right'\\] \\(stereo\\): use "
                                         '--calibration-dataset'):
        calibration_batches_from_directory(tmp_path, stereo)


def test_dataset_samples_become_feeds_per_input_kind():
    rgb = np.full((4, 6, 3), 255, np.uint8)
    assert sample_to_feeds({'rgb': rgb}, SPEC)['image'].max() == pytest.approx(2.0)
    nir_spec = ModelSpec(input_kind='nir', input_channels=1, input_height=4, input_width=6,
                         mean=(0.5,), std=(0.5,))
    nir = np.zeros((4, 6), np.uint8)
    np.testing.assert_allclose(sample_to_feeds({'nir': nir}, nir_spec)['image'], -1.0)
    stereo_spec = ModelSpec(input_kind='stereo', input_names=('left', 'right'),
                            input_height=4, input_width=6)
    feeds = sample_to_feeds({'rgb': rgb, 'right': rgb // 2}, stereo_spec)
    assert sorted(feeds) == ['left', 'right']
    np.testing.assert_allclose(feeds['right'], 127 / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="calibration of 'semidense' models"):
        sample_to_feeds({}, ModelSpec(input_kind='semidense', input_names=('image', 'sparse')))
