"""Model files with float16 weights: half the bytes, float32 compute, the rounding measured."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from depth_nodes.runtime.engine import EngineOptions
from depth_nodes.runtime.onnx_compat import check_tensorrt_compatibility
from depth_nodes.runtime.torch_engine import TorchEngine
from training.export import ExportParityError, export_onnx
from training.float16_weights import (onnx_initializers_to_float16, parameters_as_float16,
                                      plain_state_dict)
from training.models.pix2pix import Pix2PixConfig, Pix2PixMethod

torch.set_num_threads(1)


def affine_model(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """y = x @ weight + bias, with both as initializers."""
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'weight'], ['xw']),
         helper.make_node('Add', ['xw', 'bias'], ['y'])], 'affine',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [2, weight.shape[0]])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [2, weight.shape[1]])],
        [numpy_helper.from_array(weight, 'weight'), numpy_helper.from_array(bias, 'bias')])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)


def test_large_initializers_become_float16_behind_a_cast_and_compute_the_same_graph():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(64, 32)).astype(np.float32)       # 2048 values: converted
    bias = (rng.normal(size=32) / 3).astype(np.float32)         # 32 values: kept
    model, converted = onnx_initializers_to_float16(affine_model(weight, bias))
    onnx.checker.check_model(model)
    assert converted == 1
    stored = {t.name: t for t in model.graph.initializer}
    assert stored['weight_float16'].data_type == TensorProto.FLOAT16
    assert stored['bias'].data_type == TensorProto.FLOAT
    assert [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node][0] == (
        'Cast', ['weight_float16'], ['weight'])
    assert len(model.SerializeToString()) < 0.6 * len(affine_model(weight, bias)
                                                      .SerializeToString())
    x = rng.normal(size=(2, 64)).astype(np.float32)
    y = ort.InferenceSession(model.SerializeToString()).run(None, {'x': x})[0]
    rounded = weight.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(y, x @ rounded + bias, rtol=1e-5, atol=1e-5)
    # The rounding is real (it is what the exporter reports) and within float16's 2**-11.
    assert np.abs(rounded - weight).max() > 0
    assert np.all(np.abs(rounded - weight) <= np.abs(weight) * 2.0 ** -11)


def test_float16_parameters_compute_in_float32_and_load_back_under_their_own_names():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16), nn.Conv2d(16, 1, 1)).eval()
    half = parameters_as_float16(net)
    assert half[0].parametrizations.weight.original.dtype == torch.float16   # 1200 values
    assert half[0].bias.dtype == torch.float32 and half[2].weight.dtype == torch.float32
    assert net[0].weight.dtype == torch.float32                 # the original is untouched
    x = torch.randn(1, 3, 12, 12)
    expected = nn.Sequential(nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16), nn.Conv2d(16, 1, 1)).eval()
    expected.load_state_dict(net.state_dict())
    expected[0].weight.data = net[0].weight.data.half().float()
    with torch.no_grad():
        torch.testing.assert_close(half(x), expected(x), rtol=0, atol=1e-6)
    plain = plain_state_dict(half.state_dict())
    assert set(plain) == set(net.state_dict())
    assert plain['0.weight'].dtype == torch.float32
    assert torch.equal(plain['0.weight'], net[0].weight.half().float())


SMALL = dict(input_height=32, input_width=48, num_downs=4, generator_channels=8,
             discriminator_channels=4, discriminator_layers=2, min_depth=0.5, max_depth=8.0)


def test_export_halves_both_files_and_reports_the_rounding(tmp_path):
    torch.manual_seed(0)
    method = Pix2PixMethod(Pix2PixConfig(**SMALL))
    full = export_onnx(method, tmp_path / 'full.onnx')
    half = export_onnx(method, tmp_path / 'half.onnx', weights='float16')
    assert full['weights'] == 'float32' and full['float16_max_abs_error'] is None
    assert half['onnx_bytes'] < 0.6 * full['onnx_bytes']
    program = tmp_path / 'half.pt2'
    assert program.stat().st_size < 0.65 * (tmp_path / 'full.pt2').stat().st_size
    # The exported code is exact; the rounding moves the tanh output a little, not nothing.
    assert half['max_abs_error'] < 1e-5 and half['program_max_abs_error'] < 1e-5
    assert 0 < half['float16_max_abs_error'] < 1e-2
    # TensorRT 10 can parse it as written (Cast from FLOAT16 is in its table), though the
    # backend folds the casts before parsing (test_tensorrt_fakes.py).
    assert check_tensorrt_compatibility(tmp_path / 'half.onnx') == []
    # Each backend of the node runs its half file like the float32 module, within the
    # tolerance the exporter held it to.
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        reference = method.export_bundle().module(x).numpy()
    name = method.model_spec().input_names[0]
    onnx_out = ort.InferenceSession(str(tmp_path / 'half.onnx')).run(None, {name: x.numpy()})[0]
    torch_out = TorchEngine(program, EngineOptions()).run({name: x.numpy()})
    torch_out = next(iter(torch_out.values()))
    for out in (onnx_out, torch_out):
        assert np.abs(out - reference).max() < half['float16_tolerance']
    with pytest.raises(ExportParityError, match='float16 weights change'):
        export_onnx(method, tmp_path / 'strict.onnx', weights='float16',
                    float16_tolerance=1e-9, write_program=False)
    with pytest.raises(ValueError, match='weights'):
        export_onnx(method, tmp_path / 'x.onnx', weights='int8')
