"""The NCHWc rewrite of ONNX Runtime's optimised graph (depth_nodes/runtime/ort_nchwc.py):
element-wise operators between NCHWc convolutions stop paying reorders, the outputs stay
those of the plain session, and anything doubtful falls back to the plain session."""
import collections
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from depth_nodes.runtime import onnxruntime_engine, ort_nchwc
from depth_nodes.runtime.engine import EngineOptions
from depth_nodes.runtime.onnxruntime_engine import OnnxRuntimeEngine
from fixtures.models import H, W, reference, residual_elu_model

REPO = Path(__file__).resolve().parents[2]
# The rewrite is the CPU provider's: also with ONNX Runtime's OpenVINO build installed.
CPU_PROVIDER = EngineOptions(intra_op_threads=1, openvino=False)


def ort_optimised(path, tmp_path):
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / 'optimised.onnx')
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    model = onnx.load(str(tmp_path / 'optimised.onnx'))
    if not any(node.domain == ort_nchwc.NCHWC_DOMAIN for node in model.graph.node):
        pytest.skip('ONNX Runtime does not use the NCHWc layout on this CPU')
    return model, ort_nchwc.known_shapes(onnx.load(str(path)))


def op_counts(model):
    return collections.Counter(node.op_type for node in model.graph.node)


def test_elus_and_residual_add_move_into_nchwc_and_the_reorders_go(tmp_path):
    path = residual_elu_model(tmp_path / 'm.onnx')
    model, shapes = ort_optimised(path, tmp_path)
    before = op_counts(model)
    # ONNX Runtime's own graph: every ELU sits between a ReorderOutput and a ReorderInput.
    assert before['Elu'] == 5 and before['ReorderOutput'] >= 5 and before['ReorderInput'] >= 4
    assert ort_nchwc.keep_elementwise_in_nchwc(model, shapes) == 6     # 5 ELUs and the Add
    after = op_counts(model)
    assert after['ReorderInput'] == 0
    assert after['ReorderOutput'] == 1                           # the graph output only
    assert after['Add'] == 0                                     # summed by the convolution
    assert after['Elu'] == 5 and after['Conv'] == before['Conv']
    sum_inputs = [n for n in model.graph.node if n.op_type == 'Conv' and len(n.input) == 4]
    assert len(sum_inputs) == 1 and sum_inputs[0].input[3].startswith('h')


def test_an_elu_whose_result_is_needed_in_nchw_stays(tmp_path):
    path = residual_elu_model(tmp_path / 'm.onnx', tail='concat')
    model, shapes = ort_optimised(path, tmp_path)
    assert ort_nchwc.keep_elementwise_in_nchwc(model, shapes) == 5     # e2 feeds the Concat
    elus = {n.output[0]: n for n in model.graph.node if n.op_type == 'Elu'}
    assert 'e2' in elus                                          # still the NCHW tensor


@pytest.mark.parametrize('tail', ['conv', 'concat'])
def test_engine_output_equals_the_plain_graph(tmp_path, tail):
    path = residual_elu_model(tmp_path / 'm.onnx', tail=tail)
    x = np.random.default_rng(3).normal(0, 1, (1, 2, H, W)).astype(np.float32)
    expected = reference(path, x)
    engine = OnnxRuntimeEngine(path, CPU_PROVIDER)
    if engine.nchwc_moved == 0:
        pytest.skip(f'no NCHWc rewrite on this CPU ({engine.nchwc_note or "no NCHWc"})')
    assert engine.nchwc_moved == (6 if tail == 'conv' else 5)
    assert 'element-wise ops in NCHWc' in engine.describe()
    np.testing.assert_allclose(engine.run({'x': x})['y'], expected, rtol=1e-5, atol=1e-5)


def test_bundled_semidense_model_is_unchanged_by_the_rewrite():
    path = REPO / 'models' / 'semidense_synthetic.onnx'
    on = OnnxRuntimeEngine(path, CPU_PROVIDER)
    off = OnnxRuntimeEngine(path, replace(CPU_PROVIDER, nchwc_elementwise=False))
    if on.nchwc_moved == 0:
        pytest.skip('no NCHWc rewrite on this CPU')
    assert off.nchwc_moved == 0 and on.metadata == off.metadata
    shape = on.input_shapes['semidense']
    x = np.random.default_rng(4).random(shape, dtype=np.float32)
    np.testing.assert_allclose(on.run({'semidense': x})['normalized_depth'],
                               off.run({'semidense': x})['normalized_depth'],
                               rtol=1e-5, atol=1e-6)


def test_environment_variable_turns_it_off(tmp_path, monkeypatch):
    path = residual_elu_model(tmp_path / 'm.onnx')
    monkeypatch.setenv(onnxruntime_engine.NCHWC_ENV, '0')
    engine = OnnxRuntimeEngine(path, CPU_PROVIDER)
    assert engine.nchwc_moved == 0 and engine.nchwc_note == ''


def test_dynamic_input_shape_keeps_the_plain_session(tmp_path):
    path = residual_elu_model(tmp_path / 'm.onnx', dynamic=True)
    engine = OnnxRuntimeEngine(path, CPU_PROVIDER)
    assert engine.nchwc_moved == 0
    if engine.nchwc_note:                       # a CPU without NCHWc writes no note
        assert 'dynamic shape' in engine.nchwc_note
    x = np.random.default_rng(5).normal(0, 1, (1, 2, H, W)).astype(np.float32)
    np.testing.assert_allclose(engine.run({'x': x})['y'], reference(path, x), rtol=1e-5,
                               atol=1e-5)


def test_a_rewrite_that_changes_the_output_is_refused(tmp_path, monkeypatch):
    """The check at load is what makes the rewrite safe: corrupt it and the engine must
    keep the plain session, say so, and still compute the right values."""
    path = residual_elu_model(tmp_path / 'm.onnx')
    real = ort_nchwc.keep_elementwise_in_nchwc

    def corrupting(model, shapes=None):
        moved = real(model, shapes)
        for node in model.graph.node:
            if node.op_type == 'Elu':
                del node.attribute[:]
                node.attribute.append(helper.make_attribute('alpha', 0.5))
                break
        return moved

    monkeypatch.setattr(ort_nchwc, 'keep_elementwise_in_nchwc', corrupting)
    engine = OnnxRuntimeEngine(path, CPU_PROVIDER)
    x = np.random.default_rng(6).normal(0, 1, (1, 2, H, W)).astype(np.float32)
    if 'NCHWc' not in engine.nchwc_note:
        pytest.skip('no NCHWc rewrite on this CPU')
    assert engine.nchwc_moved == 0 and 'differs' in engine.nchwc_note
    np.testing.assert_allclose(engine.run({'x': x})['y'], reference(path, x), rtol=1e-5,
                               atol=1e-5)


def test_model_loads_when_the_optimised_copy_cannot_be_written(tmp_path, monkeypatch):
    """ONNX Runtime fails the session when it cannot write the optimised model (a full or
    read-only /tmp): the engine must then load the model as it would without the rewrite."""
    import contextlib
    path = residual_elu_model(tmp_path / 'm.onnx')
    monkeypatch.setattr(onnxruntime_engine.tempfile, 'TemporaryDirectory',
                        lambda **_: contextlib.nullcontext(str(tmp_path / 'missing' / 'dir')))
    engine = OnnxRuntimeEngine(path, CPU_PROVIDER)
    assert engine.nchwc_moved == 0 and engine.nchwc_note.startswith('NCHWc rewrite skipped')
    x = np.random.default_rng(7).normal(0, 1, (1, 2, H, W)).astype(np.float32)
    np.testing.assert_allclose(engine.run({'x': x})['y'], reference(path, x), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize('b_shape, moved', [((1, 16, 4, 4), 1), ((1, 16, 1, 1), 0), (None, 0)])
def test_a_binary_operator_moves_only_between_tensors_of_the_same_known_shape(b_shape, moved):
    """Add(a, b) of two NCHWc tensors is element-wise in the blocked layout only when it does
    not broadcast; without a recorded shape for both it stays in NCHW."""
    def reorder(op, source, target, **attributes):
        return helper.make_node(op, [source], [target], domain=ort_nchwc.NCHWC_DOMAIN,
                                **attributes)
    nodes = [reorder('ReorderOutput', 'a_c', 'a', channels=16),
             reorder('ReorderOutput', 'b_c', 'b', channels=16),
             helper.make_node('Add', ['a', 'b'], ['s']),
             reorder('ReorderInput', 's', 's_c'),
             helper.make_node('Identity', ['s_c'], ['y'])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ('a_c', 'b_c')]
    graph = helper.make_graph(nodes, 'g', inputs,
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    shapes = {'a': (1, 16, 4, 4)}
    if b_shape is not None:
        shapes['b'] = b_shape
    assert ort_nchwc.keep_elementwise_in_nchwc(model, shapes) == moved
    ops = [n.op_type for n in model.graph.node]
    assert ops == (['Add', 'Identity'] if moved else
                   ['ReorderOutput', 'ReorderOutput', 'Add', 'ReorderInput', 'Identity'])
