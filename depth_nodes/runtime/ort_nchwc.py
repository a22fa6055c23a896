"""Keep element-wise operations in ONNX Runtime's blocked NCHWc layout (CPU).

On x86 CPUs ONNX Runtime's NCHWc transformer (graph level ORT_ENABLE_ALL) runs convolutions
in a blocked channel layout, NCHW8c (AVX2) or NCHW16c (AVX-512), and inserts ReorderOutput /
ReorderInput nodes wherever a tensor reaches an operator it does not know to be
layout-agnostic. It knows Relu, Sigmoid and Tanh (fused into the convolution) and Add, Sum,
Mul and Concat of two NCHWc tensors, but not ELU or LeakyReLU. A network built of
conv -> ELU -> conv (Makarov et al.'s semi-dense interpolation network) therefore pays a
full reorder to NCHW and back around every activation: at 1000x1300 the semi-dense network
spent 62 of its 330 ms in reorders. (In the DPN and the pix2pix U-Net most ELUs and
LeakyReLUs feed a Concat or a normalisation that stays in NCHW anyway: little to gain.)

An element-wise operator with f(0) = 0 computes the same values in any memory layout, and
the zero padding of a partial channel block stays zero, so this pass, run on the model
ONNX Runtime itself optimised, lets such operators (and the residual Add that follows them)
read and write the NCHWc tensors directly and drops the reorders that become dead:

    NchwcConv -> ReorderOutput -> Elu -> ReorderInput -> NchwcConv
    NchwcConv -> Elu -> NchwcConv

It does not change the network or its weights. The optimised model holds CPU-specific
kernels, so it is rebuilt at every load on the machine that runs it and never stored.
OnnxRuntimeEngine checks the rewritten session against the plain one on a random input
before using it and keeps the plain one when they differ.
"""
from __future__ import annotations

import collections

import onnx

NCHWC_DOMAIN = 'com.microsoft.nchwc'
# Element-wise, f(0) = 0 (padded channels stay zero), one tensor in, one out.
UNARY_OPS = frozenset({'Elu', 'LeakyRelu', 'Selu', 'Celu', 'Softsign', 'Neg', 'Abs'})
# Element-wise of two tensors; rewritten only when both are NCHWc and the graph records the
# same shape for both (a broadcast would not be element-wise in the blocked layout).
BINARY_OPS = frozenset({'Add', 'Sub', 'Mul'})


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _is_nchwc(node: onnx.NodeProto, op_type: str) -> bool:
    """A ReorderInput / ReorderOutput between NCHW and NCHWc (not the NHWC variant)."""
    return (node.domain == NCHWC_DOMAIN and node.op_type == op_type
            and not _attribute(node, 'channels_last', 0))


def known_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The fully known tensor shapes of an original (standard-operator) model, by ONNX shape
    inference: the names ONNX Runtime keeps for the NCHW tensors of its optimised graph."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - without shapes only binary operators stay put
        return {}
    return _recorded_shapes(inferred.graph)


def keep_elementwise_in_nchwc(model: onnx.ModelProto,
                              shapes: dict[str, tuple[int, ...]] | None = None) -> int:
    """Rewrite ``model`` (ONNX Runtime's optimised graph, in place) so that the element-wise
    operators in UNARY_OPS / BINARY_OPS between NCHWc convolutions work on the NCHWc
    tensors; returns how many operators were moved (0: model unchanged).

    An operator moves only when that removes reorders: its inputs come out of NCHWc
    (ReorderOutput) and its output goes only back into NCHWc (ReorderInput) or into other
    moved operators. One whose result is needed in NCHW (a Concat, a graph output) stays:
    moving it would only shift the reorder and make it work on padded channel blocks.
    ``shapes`` (known_shapes() of the original model) adds to the shapes the optimised graph
    records: a binary operator moves only when both its inputs have the same known shape."""
    graph = model.graph
    nodes = list(graph.node)
    graph_outputs = {output.name for output in graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
    for node in nodes:
        for name in node.input:
            consumers[name].append(node)
    shapes = {**(shapes or {}), **_recorded_shapes(graph)}
    # NCHW tensor name -> (its NCHWc twin, logical channels), from ReorderOutput nodes.
    twin: dict[str, tuple[str, int]] = {}
    candidates: dict[int, onnx.NodeProto] = {}
    produced_by: dict[str, int] = {}        # candidate output -> id of the candidate
    for node in nodes:
        if _is_nchwc(node, 'ReorderOutput'):
            channels = _attribute(node, 'channels')
            if channels:
                twin[node.output[0]] = (node.input[0], int(channels))
            continue
        if not _is_elementwise(node):
            continue
        sources = [twin.get(name) for name in node.input]
        if any(source is None for source in sources) or len({c for _, c in sources}) != 1:
            continue
        if len(node.input) == 2 and (shapes.get(node.input[0]) is None
                                     or shapes.get(node.input[0]) != shapes.get(node.input[1])):
            continue
        if node.input[0] in shapes:
            shapes[node.output[0]] = shapes[node.input[0]]
        candidates[id(node)] = node
        produced_by[node.output[0]] = id(node)
        twin[node.output[0]] = (node.output[0] + '_nchwc', sources[0][1])

    # Keep only the operators whose output stays in NCHWc, to a fixed point.
    while True:
        pruned = set()
        for key, node in candidates.items():
            output = node.output[0]
            keeps_nchwc = output not in graph_outputs and all(
                _is_nchwc(user, 'ReorderInput') or id(user) in candidates
                for user in consumers[output])
            inputs_nchwc = all(name not in produced_by or produced_by[name] in candidates
                               for name in node.input)
            if not (keeps_nchwc and inputs_nchwc):
                pruned.add(key)
        if not pruned:
            break
        for key in pruned:
            del candidates[key]
    if not candidates:
        return 0

    new_name: dict[str, str] = {}           # NCHW tensor -> the NCHWc tensor to read
    used_names = {name for node in nodes for name in (*node.input, *node.output)}
    for node in nodes:
        if _is_nchwc(node, 'ReorderOutput') and node.output[0] in twin:
            new_name.setdefault(node.output[0], node.input[0])
        if id(node) not in candidates:
            continue
        for k, name in enumerate(node.input):
            node.input[k] = new_name[name]
        renamed = node.output[0] + '_nchwc'
        while renamed in used_names:
            renamed += '_'
        used_names.add(renamed)
        new_name[node.output[0]] = renamed
        node.output[0] = renamed
    # The ReorderInputs after the moved operators read their NCHWc results directly.
    moved_outputs = {name for name, key in produced_by.items() if key in candidates}
    aliases = {node.output[0]: new_name[node.input[0]] for node in nodes
               if _is_nchwc(node, 'ReorderInput') and node.input[0] in moved_outputs}
    rewritten = []
    for node in nodes:
        if _is_nchwc(node, 'ReorderInput') and node.output[0] in aliases:
            continue
        for k, name in enumerate(node.input):
            if name in aliases:
                node.input[k] = aliases[name]
        rewritten.append(node)

    # Reorders that fed only the moved operators are dead now.
    while True:
        used = {name for node in rewritten for name in node.input}
        alive = [node for node in rewritten
                 if not (node.domain == NCHWC_DOMAIN
                         and node.op_type in ('ReorderOutput', 'ReorderInput')
                         and node.output[0] not in used and node.output[0] not in graph_outputs)]
        if len(alive) == len(rewritten):
            break
        rewritten = alive

    rewritten = _fuse_sums_into_convolutions(rewritten, set(new_name[n] for n in moved_outputs),
                                             graph_outputs)
    del graph.node[:]
    graph.node.extend(rewritten)
    # Shapes recorded for the old NCHW tensors no longer hold for the renamed ones.
    del graph.value_info[:]
    return len(candidates)


def _recorded_shapes(graph: onnx.GraphProto) -> dict[str, tuple[int, ...]]:
    """Fully known tensor shapes in the graph's value_info / inputs / outputs (ONNX Runtime
    writes them for a model of fixed size)."""
    shapes = {}
    for value in (*graph.value_info, *graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField('dim_value') and d.dim_value > 0 for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _is_elementwise(node: onnx.NodeProto) -> bool:
    if node.domain not in ('', 'ai.onnx') or len(node.output) != 1:
        return False
    return ((node.op_type in UNARY_OPS and len(node.input) == 1)
            or (node.op_type in BINARY_OPS and len(node.input) == 2))


def _fuse_sums_into_convolutions(nodes: list[onnx.NodeProto], nchwc_names: set[str],
                                 graph_outputs: set[str]) -> list[onnx.NodeProto]:
    """Add(x, conv(y)) of NCHWc tensors -> conv(y) accumulating onto x, through the NCHWc
    Conv's optional fourth input ``Sum`` (as ONNX Runtime does for the Adds it moves
    itself: the residual connection of a ResNet block costs no extra pass over memory).
    Only a convolution whose output has no other use and no fused activation qualifies,
    and ``x`` must be computed before the convolution."""
    position = {name: k for k, node in enumerate(nodes) for name in node.output}
    consumers = collections.Counter(name for node in nodes for name in node.input)
    removed: set[int] = set()
    for add in nodes:
        if (add.op_type != 'Add' or add.domain not in ('', 'ai.onnx')
                or add.output[0] not in nchwc_names):
            continue
        for conv_input, other in ((add.input[1], add.input[0]), (add.input[0], add.input[1])):
            if conv_input not in position or conv_input in graph_outputs:
                continue
            conv = nodes[position[conv_input]]
            if (conv.domain != NCHWC_DOMAIN or conv.op_type != 'Conv'
                    or consumers[conv_input] != 1 or len(conv.input) > 3
                    or _attribute(conv, 'activation') is not None
                    or position.get(other, -1) >= position[conv_input]):
                continue
            while len(conv.input) < 3:
                conv.input.append('')          # no bias: the optional input stays empty
            conv.input.append(other)
            conv.output[0] = add.output[0]
            removed.add(id(add))
            break
    return [node for node in nodes if id(node) not in removed]
