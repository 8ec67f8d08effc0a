"""Edits of a quantised ONNX graph after export, each keeping what the graph computes: activation
Q/DQ pairs stored as uint8 (the kernels ONNX Runtime fuses on x86) and Conv/Gemm biases stored as
int32 at the scale the engines compute with."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def biases_to_int32(model) -> int:
    """Store each quantised Conv/Gemm's float bias as int32 at scale s_input x s_weight behind a
    DequantizeLinear: what ONNX Runtime, OpenVINO and LiteRT compute with anyway. Left in float,
    the graph run with its quantisation simulated (the gate's float source) added the exact
    bias, the engines the rounded one; EfficientNet-Lite0's stem has weight scales up to 0.49,
    so the rounding moved 0.4 % of the stem's outputs by a step, and its first depthwise
    convolution (effective weights up to 23) amplified that to 24 steps: the INT8 files agreed
    with the simulation on 0.9869 of 1,065 held-out faces, 0.9906 with the biases stored like
    this. Returns the biases changed."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def scale(name: str) -> np.ndarray | None:
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in inits:
            return None
        return numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)

    replaced: set[str] = set()
    for node in list(graph.node):
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 \
                or node.input[2] not in inits:
            continue
        s_in, s_w = scale(node.input[0]), scale(node.input[1])
        if s_in is None or s_w is None:
            continue
        bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
        step = s_in * s_w * np.ones_like(bias)
        q = np.rint(bias / step)
        if np.abs(q).max() >= 2 ** 31:
            log.warning("%s: bias beyond int32 at scale s_input x s_weight; left in float",
                        node.name or node.input[2])
            continue
        name = node.input[2]
        graph.initializer.extend([numpy_helper.from_array(q.astype(np.int32), name + "_int32"),
                                  numpy_helper.from_array(step.astype(np.float32),
                                                          name + "_int32_scale")])
        graph.node.insert(list(graph.node).index(node), helper.make_node(
            "DequantizeLinear", [name + "_int32", name + "_int32_scale"],
            [name + "_dequantized"], axis=0))
        node.input[2] = name + "_dequantized"
        replaced.add(name)
    still_used = {x for n in graph.node for x in n.input}
    for name in replaced - still_used:
        graph.initializer.remove(inits[name])
    return len(replaced)


def activations_to_uint8(model) -> int:
    """Store activation Quantize/DequantizeLinear pairs as uint8 with the zero point moved by
    128 (the same numbers: q + 128 with z + 128); weights stay int8. ONNX Runtime's x86 kernels
    are u8s8: with int8 activations it fused the convolutions whose output also feeds a residual
    Add into nothing, leaving 10 of 49 convolutions in float with 30 layout transposes (INT8
    1.18x its FP32 twin on an AVX2 CPU; 1.58x with uint8). Returns the Q/DQ nodes changed."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    moved: dict[str, str] = {}
    changed = 0
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3 \
                or node.input[0] in inits or node.input[2] not in inits:
            continue  # a constant input is a weight: it stays int8
        zp = numpy_helper.to_array(inits[node.input[2]])
        if zp.dtype != np.int8 or zp.size != 1:
            continue
        if node.input[2] not in moved:
            name = node.input[2] + "_u8"
            graph.initializer.append(numpy_helper.from_array(
                (zp.astype(np.int16) + 128).astype(np.uint8), name))
            moved[node.input[2]] = name
        node.input[2] = moved[node.input[2]]
        changed += 1
    still_used = {x for n in graph.node for x in n.input}
    for name in moved:
        if name not in still_used:
            graph.initializer.remove(inits[name])
    for info in list(graph.value_info):  # int8 activation types are now uint8: re-inferred
        if info.type.tensor_type.elem_type == TensorProto.INT8:
            graph.value_info.remove(info)
    return changed


def unquantised_residual_convs(model) -> int:
    """Take out the activation Quantize/DequantizeLinear pair on each convolution output that
    only a residual Add reads: what OpenVINO's CPU plugin computes. It fuses such a convolution
    and the Add into one kernel (convolution with a sum post-op) and adds the convolution's
    output to the other branch without rounding it to its quantisation grid; measured on the
    shipped EfficientNet-Lite0 QAT graph (``benchmarks/ov_layers.py``), the first residual
    Add's output then differed from the graph's simulation by a step on 17 % of its values,
    0.1 % with this pair left out of the simulation. Returns the pairs taken out."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    removed = 0
    for dq in list(graph.node):
        q = producer.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        conv = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" \
            else None
        if conv is None or conv.op_type != "Conv" or q.input[0] in inits:
            continue
        users = readers.get(dq.output[0], [])
        if len(readers.get(q.input[0], [])) != 1 or len(readers.get(q.output[0], [])) != 1 \
                or len(users) != 1 or users[0].op_type != "Add":
            continue
        add = users[0]
        add.input[list(add.input).index(dq.output[0])] = q.input[0]
        graph.node.remove(q)
        graph.node.remove(dq)
        removed += 1
    return removed


def float_biases(model) -> int:
    """Store each int32 bias behind a DequantizeLinear as the float it stands for (what
    :func:`biases_to_int32` made, undone): rknn-toolkit2 2.5.0 fails to fold such constants
    (``fold_constant``: IndexError) and quantises float biases itself at the same scale.
    Returns the biases changed."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    folded = 0
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits \
                or inits[node.input[0]].data_type != 6:  # TensorProto.INT32
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        graph.initializer.append(numpy_helper.from_array((q * scale).astype(np.float32),
                                                         node.output[0]))
        graph.node.remove(node)
        folded += 1
    still_used = {x for n in graph.node for x in n.input}
    for name, init in inits.items():
        if name not in still_used:
            graph.initializer.remove(init)
    return folded
