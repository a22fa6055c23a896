"""Will TensorRT 10's ONNX parser take this model? A static check, no TensorRT needed.

Checks every node (subgraphs and model-local functions included) against the operator support
matrix of the TensorRT 10 ONNX parser, plus the properties the TensorRT backend relies on:
static input and output shapes, default-domain opset 9..20, no DOUBLE tensors anywhere. Each
finding is a :class:`Problem` naming the node (or tensor), its op type and the reason.

Source of the table: onnx/onnx-tensorrt ``docs/operators.md`` of release 10.1 GA (commit
96e7811, June 2024; "TensorRT 10.0 supports operators in the inclusive range of opset 9 to
opset 20"). The table below is our own restatement: op -> the data types of its main input
that the parser accepts, plus the attribute/input restrictions that can bite a depth network
(Resize modes, pooling rank and dilations, "axes must be an initializer", ...). Restrictions we
cannot decide statically (e.g. bidirectional RNN activations) are not checked; the parser
itself (depth_nodes.build_engine) stays the final word.

Uses the pip-only ``onnx`` package, so it is for tools and tests: the node's start-up path
never imports this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

TABLE_SOURCE = 'onnx-tensorrt docs/operators.md, release 10.1 GA (commit 96e7811)'
MIN_OPSET, MAX_OPSET = 9, 20
DEFAULT_DOMAINS = ('', 'ai.onnx')

_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_NUMBERS = _FLOATS | {TensorProto.INT32, TensorProto.INT64}
_ANY = _NUMBERS | {TensorProto.BOOL}
_BOOL = frozenset({TensorProto.BOOL})
_FP32_FP16 = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
_QUANTIZED = frozenset({TensorProto.INT8, TensorProto.FLOAT8E4M3FN, TensorProto.INT4})

# Supported ops, grouped by the types accepted for the main data input (see _DATA_TENSOR).
_SUPPORTED_BY_TYPES: dict[frozenset, str] = {
    _FLOATS: """
        Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv
        ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool
        GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax
        ImageScaler InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax LRN
        LSTM LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization ParametricSoftplus
        Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike
        Reciprocal Resize RNN Round ScaledTanh Scan Selu Sigmoid Sin Sinh Softmax Softplus
        Softsign Sqrt Tan Tanh ThresholdedRelu Upsample""",
    _NUMBERS: """
        Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less
        LessOrEqual Max Min Mod Mul Neg Pad Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
        ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Scatter
        ScatterElements ScatterND Shrink Sign SpaceToDepth Sub Sum TopK""",
    _ANY: """
        Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND
        Identity If Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile
        Transpose Trilu Unsqueeze Where""",
    _ANY | {TensorProto.UINT8}: 'Cast CastLike',
    _BOOL: 'And Not Or Xor',
    _FP32_FP16: 'DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign',
    _NUMBERS | {TensorProto.FLOAT8E4M3FN}: 'Mean',
    _NUMBERS | {TensorProto.INT8}: 'Gelu',
    _QUANTIZED: 'DequantizeLinear',
}
SUPPORTED_OPS: dict[str, frozenset] = {
    op: types for types, ops in _SUPPORTED_BY_TYPES.items() for op in ops.split()}

# Listed as not supported ("N") in the matrix; kept to tell "unsupported" from "unknown".
UNSUPPORTED_OPS = frozenset("""
    AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow
    CenterCropPad Col2Im Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear
    HammingWindow HannWindow ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix
    Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement
    QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty
    SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss
    SplitToSequence STFT StringConcat StringNormalizer StringSplit TfIdfVectorizer
    Unique""".split())

# Which tensor the "supported types" column refers to, where it is not input 0.
_DATA_TENSOR = {'Where': ('input', 1), 'OneHot': ('input', 2), 'ConstantOfShape': ('output', 0),
                'EyeLike': ('output', 0), 'RandomNormalLike': ('output', 0),
                'RandomUniformLike': ('output', 0)}

_RESIZE_COORDINATE_MODES = ('half_pixel', 'pytorch_half_pixel', 'tf_half_pixel_for_nn',
                            'asymmetric', 'align_corners')
_RESIZE_MODES = ('nearest', 'linear')
_RESIZE_NEAREST_MODES = ('floor', 'ceil', 'round_prefer_floor', 'round_prefer_ceil')
_TOPK_MAX_K = 3840
_REDUCE_OPS = ('ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin '
               'ReduceProd ReduceSum ReduceSumSquare').split()


@dataclass(frozen=True)
class Problem:
    """One reason TensorRT 10 would reject (or mis-build) the model."""
    node_name: str    # the node's name; for graph-level problems the tensor or 'model'
    op_type: str      # the node's op type, or 'graph input' / 'graph output' / 'initializer'
    reason: str

    def __str__(self) -> str:
        return f"{self.node_name} ({self.op_type}): {self.reason}"


def format_problems(problems: Iterable[Problem]) -> str:
    return '\n'.join(f'  - {p}' for p in problems)


def check_tensorrt_compatibility(model: str | Path | onnx.ModelProto) -> list[Problem]:
    """Every problem TensorRT 10's ONNX parser would have with ``model`` (empty: none found).

    ``model`` is a path or a loaded ModelProto. External weights are not loaded: only the
    graph, the types and the small constants that restrictions look at are needed.
    """
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001  (protobuf raises DecodeError and others)
            return [Problem(str(path), 'model', f'not a readable ONNX file ({exc})')]
    problems = _check_opsets(model)
    light, weights = _without_weights(model)
    try:
        light = onnx.shape_inference.infer_shapes(light, strict_mode=False)
    except Exception:  # noqa: BLE001  inference is a help, not a requirement
        pass
    problems += _check_graph_io(light.graph, skip=weights)
    problems += [Problem(init.name, 'initializer', _DOUBLE_REASON)
                 for init in model.graph.initializer if init.data_type == TensorProto.DOUBLE
                 and init.name in weights]
    checker = _GraphChecker({(f.domain, f.name): f for f in model.functions})
    checker.check_graph(light.graph, outer_constants=dict.fromkeys(weights, _UNKNOWN))
    return problems + checker.problems


def _without_weights(model: onnx.ModelProto, max_bytes: int = 4096
                     ) -> tuple[onnx.ModelProto, set[str]]:
    """A copy of ``model`` whose large initializers are declared graph inputs (type and shape
    only), and their names. Shape inference then costs no copy of the weights (a 300 MB
    model would need GBs), while small initializers (Reshape shapes, axes) keep their values.
    """
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    declared = {i.name for i in graph.input}
    weights = set()
    for init in graph.initializer:
        if init.ByteSize() <= max_bytes:
            light.initializer.append(init)
            continue
        weights.add(init.name)
        if init.name not in declared:
            light.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type,
                                                                  list(init.dims)))
    copy = onnx.helper.make_model(light, opset_imports=list(model.opset_import),
                                  functions=list(model.functions))
    copy.ir_version = model.ir_version
    return copy, weights


def _check_opsets(model: onnx.ModelProto) -> list[Problem]:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        return [Problem('model', 'opset_import', 'no default-domain (ai.onnx) opset declared')]
    version = max(versions)
    if version > MAX_OPSET:
        return [Problem('model', 'opset_import', f'opset {version} > {MAX_OPSET}: TensorRT 10 '
                        f'parses opsets {MIN_OPSET} to {MAX_OPSET}; export with '
                        f'opset_version={MAX_OPSET} or lower')]
    if version < MIN_OPSET:
        return [Problem('model', 'opset_import', f'opset {version} < {MIN_OPSET}: TensorRT 10 '
                        f'parses opsets {MIN_OPSET} to {MAX_OPSET}')]
    return []


def _check_graph_io(graph: onnx.GraphProto, skip: set[str]) -> list[Problem]:
    problems = []
    initializers = {i.name for i in graph.initializer} | skip
    for role, values in (('graph input', graph.input), ('graph output', graph.output)):
        for value in values:
            if value.name in initializers:   # IR < 4 lists weights as inputs too
                continue
            tensor_type = value.type.tensor_type
            if tensor_type.elem_type == TensorProto.DOUBLE:
                problems.append(Problem(value.name, role, _DOUBLE_REASON))
            if not tensor_type.HasField('shape'):
                problems.append(Problem(value.name, role, 'no shape: TensorRT engines here are '
                                        'built for static shapes (export with fixed sizes)'))
                continue
            dims = [d.dim_value if d.HasField('dim_value') else (d.dim_param or '?')
                    for d in tensor_type.shape.dim]
            if any(not isinstance(d, int) or d <= 0 for d in dims):
                problems.append(Problem(value.name, role, f'dynamic shape {dims}: the TensorRT '
                                        'backend builds for static shapes (export without '
                                        'dynamic_axes / dynamic_shapes)'))
    return problems


_DOUBLE_REASON = ('DOUBLE (float64) tensor: TensorRT has no float64 kernels and silently '
                  'casts to float32; export in float32')


class _GraphChecker:
    def __init__(self, functions: dict):
        self.functions = functions
        self.problems: list[Problem] = []

    def report(self, node_name: str, op_type: str, reason: str) -> None:
        self.problems.append(Problem(node_name, op_type, reason))

    def check_graph(self, graph: onnx.GraphProto, outer_constants: dict,
                    prefix: str = '') -> None:
        constants = dict(outer_constants)
        for init in graph.initializer:
            constants[init.name] = _tensor_value(init)
            if init.data_type == TensorProto.DOUBLE:
                self.report(prefix + init.name, 'initializer', _DOUBLE_REASON)
        types = {v.name: v.type.tensor_type for v in
                 list(graph.input) + list(graph.value_info) + list(graph.output)}
        for index, node in enumerate(graph.node):
            if node.op_type == 'Constant' and node.domain in DEFAULT_DOMAINS:
                constants.update({out: _constant_value(node) for out in node.output})
            self.check_node(node, f'{prefix}{node.name or f"<unnamed {node.op_type} #{index}>"}',
                            constants, types)

    def check_node(self, node: onnx.NodeProto, name: str, constants: dict, types: dict) -> None:
        op = node.op_type
        function = self.functions.get((node.domain, op))
        if function is not None:   # model-local function: TensorRT 10 inlines its body
            graph = onnx.helper.make_graph(function.node, function.name, [], [])
            self.check_graph(graph, constants, prefix=f'{name}/')
            return
        if node.domain not in DEFAULT_DOMAINS:
            self.report(name, op, f"custom domain '{node.domain}': not an ONNX operator; "
                        'TensorRT needs a plugin for it')
            return
        if op in UNSUPPORTED_OPS:
            self.report(name, op, f'not supported by the TensorRT 10 ONNX parser ({TABLE_SOURCE})')
            return
        if op not in SUPPORTED_OPS:
            self.report(name, op, f'not in the TensorRT 10 ONNX operator table ({TABLE_SOURCE}): '
                        f'unknown op or newer than opset {MAX_OPSET}')
            return
        double = self._double_in_node(node, types)
        if double:
            self.report(name, op, double)
        else:
            self._check_types(node, name, types)
        for reason in _RESTRICTIONS.get(op, _no_restrictions)(node, constants, types):
            self.report(name, op, reason)
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                self.check_graph(attr.g, constants, prefix=f'{name}/{attr.name}/')
            elif attr.type == AttributeProto.GRAPHS:
                for i, sub in enumerate(attr.graphs):
                    self.check_graph(sub, constants, prefix=f'{name}/{attr.name}[{i}]/')

    @staticmethod
    def _double_in_node(node: onnx.NodeProto, types: dict) -> str:
        for attr in node.attribute:
            if attr.name in ('to', 'dtype') and attr.type == AttributeProto.INT \
                    and attr.i == TensorProto.DOUBLE:
                return f"casts to DOUBLE (attribute '{attr.name}'): " + _DOUBLE_REASON
            if attr.type == AttributeProto.TENSOR and attr.t.data_type == TensorProto.DOUBLE:
                return f"DOUBLE tensor in attribute '{attr.name}': " + _DOUBLE_REASON
        for out in node.output:
            if out in types and types[out].elem_type == TensorProto.DOUBLE:
                return f"output '{out}' is DOUBLE: " + _DOUBLE_REASON
        return ''

    def _check_types(self, node: onnx.NodeProto, name: str, types: dict) -> None:
        data_type = _data_type(node, types)
        allowed = SUPPORTED_OPS[node.op_type]
        if data_type is not None and data_type not in allowed:
            self.report(name, node.op_type, f'{TensorProto.DataType.Name(data_type)} data: '
                        f'TensorRT supports {node.op_type} on '
                        + ', '.join(sorted(TensorProto.DataType.Name(t) for t in allowed)))


def _data_type(node: onnx.NodeProto, types: dict) -> int | None:
    role, index = _DATA_TENSOR.get(node.op_type, ('input', 0))
    names = node.input if role == 'input' else node.output
    if len(names) <= index or not names[index] or names[index] not in types:
        return None
    return types[names[index]].elem_type or None


# -- constants ----------------------------------------------------------------------------
_UNKNOWN = object()   # a constant whose value is not loaded (external data)


def _tensor_value(tensor: TensorProto):
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # noqa: BLE001  external data not loaded, exotic types
        return _UNKNOWN


def _constant_value(node: onnx.NodeProto):
    for attr in node.attribute:
        if attr.name == 'value' and attr.type == AttributeProto.TENSOR:
            return _tensor_value(attr.t)
        if attr.name in ('value_float', 'value_int'):
            return np.asarray(onnx.helper.get_attribute_value(attr))
        if attr.name in ('value_floats', 'value_ints'):
            return np.asarray(list(onnx.helper.get_attribute_value(attr)))
    return _UNKNOWN


# -- restrictions (the matrix's "Restrictions" column) --------------------------------------
def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ''


def _must_be_constant(node, index: int, what: str, constants: dict) -> list[str]:
    name = _input(node, index)
    if name and name not in constants:
        return [f"input '{what}' ({name}) must be an initializer or Constant: TensorRT reads it "
                'at build time']
    return []


def _no_restrictions(node, constants, types) -> list[str]:
    return []


def _pooling(node, constants, types) -> list[str]:
    reasons = []
    kernel = _attr(node, 'kernel_shape', [])
    if node.op_type in ('AveragePool', 'MaxPool') and len(kernel) not in (2, 3):
        reasons.append(f'{len(kernel)}D pooling: TensorRT pools in 2D or 3D only')
    dilations = _attr(node, 'dilations', [])
    if any(d != 1 for d in dilations):
        reasons.append(f'dilations {list(dilations)}: must be empty or all ones')
    if node.op_type == 'MaxPool' and len(node.output) > 1 and node.output[1]:
        reasons.append("the 'Indices' output is unsupported")
    return reasons


def _resize(node, constants, types) -> list[str]:
    reasons = []
    mode = _attr(node, 'mode', 'nearest')
    if mode not in _RESIZE_MODES:
        reasons.append(f"mode '{mode}': TensorRT resizes with {' or '.join(_RESIZE_MODES)}")
    if node.op_type == 'Upsample':
        return reasons
    coordinates = _attr(node, 'coordinate_transformation_mode', 'half_pixel')
    if coordinates not in _RESIZE_COORDINATE_MODES:
        reasons.append(f"coordinate_transformation_mode '{coordinates}': supported are "
                       + ', '.join(_RESIZE_COORDINATE_MODES))
    nearest = _attr(node, 'nearest_mode', 'round_prefer_floor')
    if mode == 'nearest' and nearest not in _RESIZE_NEAREST_MODES:
        reasons.append(f"nearest_mode '{nearest}' unsupported")
    policy = _attr(node, 'keep_aspect_ratio_policy', 'stretch')
    if policy != 'stretch':
        reasons.append(f"keep_aspect_ratio_policy '{policy}': only 'stretch' is supported")
    if _attr(node, 'antialias', 0):
        reasons.append('antialias=1: antialiasing is unsupported')
    axes = _attr(node, 'axes')
    if axes is not None:
        rank = _rank(_input(node, 0), types)
        if list(axes) != list(range(rank if rank is not None else len(axes))):
            reasons.append(f'axes {list(axes)}: must be 0..rank-1 in order')
    return reasons


def _rank(name: str, types: dict) -> int | None:
    if name in types and types[name].HasField('shape'):
        return len(types[name].shape.dim)
    return None


def _constant(node, constants, types) -> list[str]:
    bad = [a.name for a in node.attribute
           if a.name in ('sparse_value', 'value_string', 'value_strings')]
    return [f"attribute '{name}' is unsupported" for name in bad]


def _cumsum(node, constants, types) -> list[str]:
    return _must_be_constant(node, 1, 'axis', constants)


def _dropout(node, constants, types) -> list[str]:
    name = _input(node, 2)
    if not name:
        return []
    value = constants.get(name, _UNKNOWN)
    if name not in constants:
        return _must_be_constant(node, 2, 'training_mode', constants)
    if value is not _UNKNOWN and bool(np.asarray(value).any()):
        return ['training_mode is True: export the model in eval mode']
    return []


def _axes_input(index: int):
    def check(node, constants, types) -> list[str]:
        return _must_be_constant(node, index, 'axes', constants)
    return check


def _one_hot(node, constants, types) -> list[str]:
    return _must_be_constant(node, 1, 'depth', constants)


def _top_k(node, constants, types) -> list[str]:
    reasons = []
    if _attr(node, 'sorted', 1) != 1:
        reasons.append('sorted=0: TensorRT returns sorted results only (sorted must be 1)')
    k = constants.get(_input(node, 1), _UNKNOWN)
    if k is not _UNKNOWN and int(np.asarray(k).max()) >= _TOPK_MAX_K:
        reasons.append(f'K={int(np.asarray(k).max())}: must be below {_TOPK_MAX_K}')
    return reasons


def _layer_norm(node, constants, types) -> list[str]:
    if any(node.output[1:]):
        return ["only the first output 'Y' is supported (Mean/InvStdDev are not)"]
    return []


def _lstm(node, constants, types) -> list[str]:
    reasons = []
    if _attr(node, 'input_forget', 0) != 0:
        reasons.append('input_forget must be 0')
    if _attr(node, 'layout', 0) != 0:
        reasons.append('layout must be 0')
    return reasons


def _scatter_nd(node, constants, types) -> list[str]:
    reduction = _attr(node, 'reduction', 'none')
    return [] if reduction == 'none' else [f"reduction '{reduction}' is unsupported"]


def _zero_point(what: str):
    def check(node, constants, types) -> list[str]:
        value = constants.get(_input(node, 2), _UNKNOWN)
        if value is not _UNKNOWN and np.asarray(value).astype(np.float64).any():
            return [f'{what} must be zero (symmetric quantization only)']
        return []
    return check


def _grid_sample(node, constants, types) -> list[str]:
    rank = _rank(_input(node, 0), types)
    return [] if rank in (None, 4) else [f'{rank}D input: GridSample needs a 4D input']


_RESTRICTIONS: dict[str, Callable[..., list[str]]] = {
    'AveragePool': _pooling, 'MaxPool': _pooling, 'LpPool': _pooling,
    'Resize': _resize, 'Upsample': _resize,
    'Constant': _constant, 'CumSum': _cumsum, 'Dropout': _dropout,
    'Pad': _axes_input(3), 'Slice': _axes_input(3),
    'Squeeze': _axes_input(1), 'Unsqueeze': _axes_input(1),
    **{op: _axes_input(1) for op in _REDUCE_OPS},
    'OneHot': _one_hot, 'TopK': _top_k, 'LayerNormalization': _layer_norm, 'LSTM': _lstm,
    'ScatterND': _scatter_nd, 'QuantizeLinear': _zero_point('y_zero_point'),
    'DequantizeLinear': _zero_point('x_zero_point'), 'GridSample': _grid_sample,
}
