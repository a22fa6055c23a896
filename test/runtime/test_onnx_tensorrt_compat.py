"""Every ONNX model the project ships or exports must be one TensorRT 10's ONNX parser takes.

Hand-built bad models show the checker names the offending node; then the committed demo
models (models/*.onnx) and a freshly initialised export of every training method
(training.models.METHODS, through training.export) are checked, parametrised so new models
and methods are covered without touching this file.
"""
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.models import write_affine_model
from onnx import TensorProto, helper, numpy_helper

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.runtime.onnx_compat import (MAX_OPSET, SUPPORTED_OPS, UNSUPPORTED_OPS, Problem,
                                             check_tensorrt_compatibility, format_problems)

REPO = Path(__file__).resolve().parents[2]
FLOAT = TensorProto.FLOAT


def make_model(nodes, inputs=None, outputs=None, initializers=(), opset=17):
    inputs = inputs or [helper.make_tensor_value_info('image', FLOAT, [1, 3, 8, 8])]
    outputs = outputs or [helper.make_tensor_value_info('depth', FLOAT, None)]
    graph = helper.make_graph(nodes, 'g', inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 8
    return model


def static_output(shape=(1, 3, 8, 8), name='depth', dtype=FLOAT):
    return [helper.make_tensor_value_info(name, dtype, list(shape))]


def found(problems):
    return [(p.node_name, p.op_type) for p in problems]


def test_problem_names_node_op_and_reason():
    problem = Problem('decoder/up1', 'Resize', "mode 'cubic'")
    assert str(problem) == "decoder/up1 (Resize): mode 'cubic'"
    assert format_problems([problem]) == "  - decoder/up1 (Resize): mode 'cubic'"


def test_table_covers_every_onnx_operator_up_to_opset_20():
    known = set(SUPPORTED_OPS) | UNSUPPORTED_OPS
    assert not set(SUPPORTED_OPS) & UNSUPPORTED_OPS
    first_version = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == '':
            first_version[schema.name] = min(schema.since_version,
                                             first_version.get(schema.name, 99))
    missing = sorted(op for op, v in first_version.items() if v <= MAX_OPSET and op not in known)
    assert missing == []
    # Names in the table that are not ONNX ops: only the parser's legacy experimental ops.
    assert sorted(op for op in known if not onnx.defs.has(op)) == [
        'ImageScaler', 'ParametricSoftplus', 'ScaledTanh']


def test_conv_resize_reduce_network_passes():
    weights = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), 'W')
    axes = numpy_helper.from_array(np.array([1], np.int64), 'axes')
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), 'scales')
    nodes = [
        helper.make_node('Conv', ['image', 'W'], ['c'], name='enc/conv', pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c'], ['r'], name='enc/relu'),
        helper.make_node('MaxPool', ['r'], ['p'], name='enc/pool', kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node('Resize', ['p', '', 'scales'], ['u'], name='dec/up', mode='linear',
                         coordinate_transformation_mode='align_corners'),
        helper.make_node('ReduceMean', ['u', 'axes'], ['depth'], name='dec/mean', keepdims=1),
    ]
    model = make_model(nodes, outputs=static_output((1, 1, 8, 8)),
                       initializers=[weights, axes, scales], opset=18)
    onnx.checker.check_model(model)
    assert check_tensorrt_compatibility(model) == []


def test_affine_fixture_model_passes(tmp_path):
    path = write_affine_model(tmp_path / 'affine.onnx', ModelSpec(input_height=8, input_width=8))
    assert check_tensorrt_compatibility(path) == []


def test_unsupported_op_is_named():
    nodes = [helper.make_node('Identity', ['image'], ['x'], name='pre'),
             helper.make_node('Det', ['x'], ['depth'], name='head/det')]
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output((1, 3))))
    assert found(problems) == [('head/det', 'Det')]
    assert 'not supported by the TensorRT 10 ONNX parser' in problems[0].reason


def test_custom_domain_op_is_named():
    node = helper.make_node('FusedConv', ['image'], ['depth'], name='fused',
                            domain='com.microsoft')
    model = make_model([node], outputs=static_output())
    model.opset_import.append(helper.make_opsetid('com.microsoft', 1))
    problems = check_tensorrt_compatibility(model)
    assert found(problems) == [('fused', 'FusedConv')]
    assert "custom domain 'com.microsoft'" in problems[0].reason


def test_dynamic_input_and_output_shapes_are_named():
    nodes = [helper.make_node('Relu', ['image'], ['depth'], name='relu')]
    model = make_model(nodes, inputs=[helper.make_tensor_value_info(
        'image', FLOAT, ['batch', 3, 8, 8])], outputs=[helper.make_tensor_value_info(
            'depth', FLOAT, ['batch', 3, 8, 8])])
    problems = check_tensorrt_compatibility(model)
    assert found(problems) == [('image', 'graph input'), ('depth', 'graph output')]
    assert "dynamic shape ['batch', 3, 8, 8]" in problems[0].reason


def test_opset_21_is_refused():
    nodes = [helper.make_node('Relu', ['image'], ['depth'], name='relu')]
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output(),
                                                       opset=21))
    assert found(problems) == [('model', 'opset_import')]
    assert problems[0].reason.startswith('opset 21 > 20')


def test_double_tensors_are_named_wherever_they_are():
    scale = numpy_helper.from_array(np.array([2.0], np.float64), 'scale64')
    nodes = [
        helper.make_node('Cast', ['image'], ['x64'], name='to_double', to=TensorProto.DOUBLE),
        helper.make_node('Mul', ['x64', 'scale64'], ['y64'], name='scale'),
        helper.make_node('Cast', ['y64'], ['depth'], name='to_float', to=FLOAT),
    ]
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output(),
                                                       initializers=[scale]))
    assert found(problems) == [('scale64', 'initializer'), ('to_double', 'Cast'),
                               ('scale', 'Mul'), ('to_float', 'Cast')]
    assert "casts to DOUBLE (attribute 'to')" in problems[1].reason
    assert "output 'y64' is DOUBLE" in problems[2].reason
    assert problems[3].reason.startswith('DOUBLE data: TensorRT supports Cast on ')


def test_double_graph_input_and_large_double_weights_are_named():
    weights = numpy_helper.from_array(np.ones((2048,), np.float64), 'big64')   # 16 kB
    nodes = [helper.make_node('Add', ['image', 'big64'], ['depth'], name='add')]
    model = make_model(nodes, inputs=[helper.make_tensor_value_info('image', TensorProto.DOUBLE,
                                                                    [1, 2048])],
                       outputs=static_output((1, 2048), dtype=TensorProto.DOUBLE),
                       initializers=[weights])
    problems = check_tensorrt_compatibility(model)
    assert found(problems) == [('image', 'graph input'), ('depth', 'graph output'),
                               ('big64', 'initializer'), ('add', 'Add')]


@pytest.mark.parametrize('attributes, expected', [
    (dict(mode='cubic'), "mode 'cubic'"),
    (dict(mode='linear', coordinate_transformation_mode='tf_crop_and_resize'),
     "coordinate_transformation_mode 'tf_crop_and_resize'"),
    (dict(mode='linear', antialias=1), 'antialias=1'),
    (dict(mode='nearest', keep_aspect_ratio_policy='not_larger'),
     "keep_aspect_ratio_policy 'not_larger'"),
])
def test_resize_modes_tensorrt_lacks_are_named(attributes, expected):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), 'scales')
    node = helper.make_node('Resize', ['image', '', 'scales'], ['depth'], name='dec/up2',
                            **attributes)
    problems = check_tensorrt_compatibility(make_model(
        [node], outputs=static_output((1, 3, 16, 16)), initializers=[scales], opset=19))
    assert found(problems) == [('dec/up2', 'Resize')]
    assert expected in problems[0].reason


def test_pooling_restrictions():
    nodes = [helper.make_node('MaxPool', ['image'], ['a', 'idx'], name='pool_with_indices',
                              kernel_shape=[2, 2], dilations=[2, 2]),
             helper.make_node('AveragePool', ['a'], ['depth'], name='pool_1d', kernel_shape=[2])]
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output((1, 3, 2))))
    assert found(problems) == [('pool_with_indices', 'MaxPool')] * 2 + [('pool_1d',
                                                                         'AveragePool')]
    reasons = [p.reason for p in problems]
    assert 'dilations [2, 2]' in reasons[0] and "'Indices' output" in reasons[1]
    assert reasons[2].startswith('1D pooling')


def test_axes_computed_at_run_time_are_named():
    nodes = [helper.make_node('Shape', ['image'], ['shape'], name='shape'),
             helper.make_node('Slice', ['shape', 'one', 'two'], ['axis'], name='axis_of_shape'),
             helper.make_node('ReduceSum', ['image', 'axis'], ['depth'], name='sum_dynamic_axes')]
    one = numpy_helper.from_array(np.array([1], np.int64), 'one')
    two = numpy_helper.from_array(np.array([2], np.int64), 'two')
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output((1, 1, 8, 8)),
                                                       initializers=[one, two], opset=18))
    assert found(problems) == [('sum_dynamic_axes', 'ReduceSum')]
    assert "input 'axes' (axis) must be an initializer or Constant" in problems[0].reason


def test_unsupported_data_type_for_an_op_is_named():
    nodes = [helper.make_node('Cast', ['image'], ['as_int'], name='to_int', to=TensorProto.INT64),
             helper.make_node('Conv', ['as_int', 'W'], ['depth'], name='int_conv')]
    weights = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.int64), 'W')
    model = make_model(nodes, outputs=static_output((1, 1, 8, 8), dtype=TensorProto.INT64),
                       initializers=[weights])
    problems = check_tensorrt_compatibility(model)
    assert found(problems) == [('int_conv', 'Conv')]
    assert problems[0].reason.startswith('INT64 data: TensorRT supports Conv on BFLOAT16, '
                                         'FLOAT, FLOAT16')


def test_unsupported_op_inside_a_subgraph_is_named_with_its_path():
    then_graph = helper.make_graph([helper.make_node('Det', ['m'], ['d'], name='det')], 'then',
                                   [], [helper.make_tensor_value_info('d', FLOAT, None)])
    else_graph = helper.make_graph([helper.make_node('Identity', ['m'], ['e'], name='id')],
                                   'else', [], [helper.make_tensor_value_info('e', FLOAT, None)])
    nodes = [helper.make_node('Constant', [], ['m'], name='matrix', value=numpy_helper.from_array(
                 np.eye(2, dtype=np.float32))),
             helper.make_node('Constant', [], ['cond'], name='cond',
                              value=numpy_helper.from_array(np.array(True))),
             helper.make_node('If', ['cond'], ['depth'], name='branch', then_branch=then_graph,
                              else_branch=else_graph)]
    problems = check_tensorrt_compatibility(make_model(nodes, outputs=static_output(())))
    assert found(problems) == [('branch/then_branch/det', 'Det')]


def test_unreadable_file_is_a_problem_naming_it(tmp_path):
    path = tmp_path / 'broken.onnx'
    path.write_bytes(b'\x08\x07not a protobuf')
    problems = check_tensorrt_compatibility(path)
    assert found(problems) == [(str(path), 'model')]


# -- what the project ships and exports ------------------------------------------------------
@pytest.mark.parametrize('model_path', sorted((REPO / 'models').glob('*.onnx')),
                         ids=lambda p: p.name)
def test_committed_demo_model_is_tensorrt_compatible(model_path):
    problems = check_tensorrt_compatibility(model_path)
    assert problems == [], f'{model_path.name}:\n{format_problems(problems)}'


def _training_methods():
    try:
        from training.models import METHODS
    except ImportError as exc:   # torch-less checkouts: the training package cannot load
        return [pytest.param(None, marks=pytest.mark.skip(reason=f'training/: {exc}'))]
    return sorted(METHODS)


@pytest.mark.parametrize('method_name', _training_methods())
def test_freshly_initialised_export_of_every_method_is_tensorrt_compatible(method_name,
                                                                           tmp_path):
    import torch
    from training.export import export_onnx
    from training.models import METHODS
    torch.manual_seed(0)
    torch.set_num_threads(1)
    method = METHODS[method_name].from_options(None)      # the paper's default configuration
    path = tmp_path / f'{method_name}.onnx'
    try:
        export_onnx(method, path, write_program=False, tolerance=1e-3)
        problems = check_tensorrt_compatibility(path)
    finally:
        path.unlink(missing_ok=True)      # default-size exports are hundreds of MB
    assert problems == [], f'{method_name}:\n{format_problems(problems)}'
