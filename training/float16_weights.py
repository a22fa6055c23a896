"""Half-size model files: weights stored as float16, computed in float32.

``training.export --weights float16`` uses these to halve a model's files without changing
how it runs: in the ONNX file each large float initializer is stored as float16 and cast back
by a ``Cast`` node (ONNX Runtime folds those casts into constants when it loads the model, and
the TensorRT backend hands its parser the folded graph: tensorrt_engine.float16_weights_folded),
so inference is float32 as before; in the torch program each large parameter is a float16
tensor behind a ``.float()`` parametrization. Rounding to float16 keeps 11 significant bits
(a relative error of at most 2**-11 per weight), which the exporter measures on the model's
output and reports.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

# Tensors smaller than this stay float32: biases and norm scales are few bytes, and a Cast
# node per tensor would cost more than it saves.
MIN_ELEMENTS = 1024
PARAMETRIZED = '.parametrizations.'


def onnx_initializers_to_float16(model, min_elements: int = MIN_ELEMENTS):
    """Store every FLOAT initializer of at least ``min_elements`` values as FLOAT16 with a
    ``Cast`` back to FLOAT under the original name, so the graph computes as before.
    Modifies and returns ``model`` (an onnx.ModelProto); returns how many were converted as
    the second value."""
    from onnx import TensorProto, helper, numpy_helper
    graph = model.graph
    consumed = {name for node in graph.node for name in node.input}
    kept, casts = [], []
    for tensor in graph.initializer:
        if (tensor.data_type != TensorProto.FLOAT or tensor.name not in consumed
                or int(np.prod(tensor.dims)) < min_elements):
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        stored = numpy_helper.from_array(values.astype(np.float16), f'{tensor.name}_float16')
        kept.append(stored)
        casts.append(helper.make_node('Cast', [stored.name], [tensor.name],
                                      name=f'{tensor.name}_to_float', to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)   # casts first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    return model, len(casts)


class _AsFloat32(nn.Module):
    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.float()


def parameters_as_float16(module: nn.Module, min_elements: int = MIN_ELEMENTS) -> nn.Module:
    """A copy of ``module`` whose parameters of at least ``min_elements`` values are float16
    tensors read through ``.float()``: torch.export then saves them at half the size, and the
    program computes in float32. Buffers (BatchNorm statistics) stay float32."""
    half = copy.deepcopy(module).eval()
    for owner in list(half.modules()):
        for name, parameter in list(owner.named_parameters(recurse=False)):
            if parameter.dtype != torch.float32 or parameter.numel() < min_elements:
                continue
            parametrize.register_parametrization(owner, name, _AsFloat32(), unsafe=True)
            owner.parametrizations[name].original = nn.Parameter(
                parameter.detach().half(), requires_grad=False)
    return half


def plain_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State-dict names and dtypes as the network declares them: ``a.parametrizations.weight
    .original`` (a float16 parameter of parameters_as_float16) -> ``a.weight`` in float32."""
    plain = {}
    for key, value in weights.items():
        if PARAMETRIZED in key and key.endswith('.original'):
            owner, rest = key.split(PARAMETRIZED, 1)
            key, value = f'{owner}.{rest[:-len(".original")]}', value.float()
        plain[key] = value
    return plain
