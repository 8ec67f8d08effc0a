"""ONNX in the compress chain: the FP32 export (torch.onnx), post-training INT8 (ONNX Runtime
static QDQ), int8 weights only, and the quantization-aware fine-tuned graph as QDQ ONNX."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.int8.graph import activations_to_uint8, biases_to_int32
from motivnet_edge.compress.int8.recipes import Calibration, Recipe
from motivnet_edge.targets.formats import FORMATS, artifact_name
from motivnet_edge.targets.preprocess import CropSpec

log = logging.getLogger(__name__)

# the outputs of a student with a values head beside its class head, in the row's order
HEAD_OUTPUTS = ("logits", "valence_arousal")


def export(model: torch.nn.Module, spec: CropSpec, tmp: Path, out_dir: Path) -> None:
    """The FP32 student, NCHW input with a dynamic batch (opset 17); a two-head student's
    heads as two named outputs (:data:`HEAD_OUTPUTS`)."""
    from motivnet_edge.compress.models.students import Heads, WithContinuous

    x = torch.zeros(FORMATS["onnx"].crop(spec).input_shape)
    two = isinstance(model, WithContinuous)
    names = list(HEAD_OUTPUTS if two else HEAD_OUTPUTS[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export((Heads(model) if two else model).eval(), (x,), str(tmp),
                          input_names=["input"], output_names=names, opset_version=17,
                          dynamo=False, dynamic_axes={n: {0: "batch"} for n in ["input", *names]})


# ONNX Runtime's histogram calibration (Percentile, Entropy) keeps every activation of every
# calibration input in memory before it bins them: a MaxViT student at 128 px on 300 crops
# reached 24.1 GB (all this machine had) and was stopped. Histogram recipes calibrate on as
# many crops as fit in this many bytes.
HISTOGRAM_BYTES = 4 * 2 ** 30


def activation_bytes(graph) -> int:
    """Bytes of the float activations one input makes: every tensor shape inference sized."""
    from onnx import TensorProto

    total = 0
    for info in graph.value_info:
        tensor = info.type.tensor_type
        dims = [d.dim_value for d in tensor.shape.dim[1:]]
        if tensor.elem_type == TensorProto.FLOAT and dims and all(d > 0 for d in dims):
            total += 4 * int(np.prod(dims))
    return total


def histogram_crops(per_crop: int, crops: int, budget: int = HISTOGRAM_BYTES) -> int:
    """How many of ``crops`` calibration inputs a histogram calibration may hold when each
    makes ``per_crop`` bytes of activations (at least 16, when there are as many)."""
    return min(crops, max(16, budget // max(per_crop, 1)))


def quantize(cal: Calibration, recipe: Recipe, tmp: Path) -> None:
    """ONNX Runtime static QDQ: per-channel int8 weights, uint8 activations, the layers the
    recipe names kept in float; a histogram recipe on the crops that fit
    :data:`HISTOGRAM_BYTES`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, inputs) -> None:
            self.it = iter(inputs[i:i + 1] for i in range(len(inputs)))

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"input": batch}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(cal.fp32), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre)).graph
        weighted = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
        inputs = cal.inputs
        if recipe.calibrate in ("Percentile", "Entropy"):
            per_crop = activation_bytes(graph)
            keep = histogram_crops(per_crop, len(inputs))
            if keep < len(inputs):
                log.warning("%s: %d crops of %.0f MB of activations each would not fit; "
                            "calibrating on %d", recipe.name, len(inputs), per_crop / 2 ** 20,
                            keep)
                inputs = inputs[:keep]
        extra = {"CalibPercentile": 99.999} if recipe.calibrate == "Percentile" else {}
        quantize_static(str(pre), str(tmp), Reader(inputs), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, recipe.calibrate),
                        nodes_to_exclude=recipe.kept_float(weighted, cal.heads),
                        extra_options=extra)


def weights_only(fp32: Path, tmp: Path) -> None:
    """Every Conv and Gemm weight as symmetric per-output-channel int8 followed by a
    DequantizeLinear; activations stay float."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    dequantize = []
    for node in graph.node:
        name = node.input[1] if node.op_type in ("Conv", "Gemm") else None
        if name not in inits:
            continue  # not a weighted layer, or a weight already converted
        weight = inits.pop(name)
        w = numpy_helper.to_array(weight)
        transposed = any(a.name == "transB" and a.i for a in node.attribute)
        axis = 1 if node.op_type == "Gemm" and not transposed else 0
        scale = np.maximum(np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(1),
                           1e-12) / 127.0
        shape = [-1 if i == axis else 1 for i in range(w.ndim)]
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        graph.initializer.remove(weight)
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32),
                                                          f"{name}_scale")])
        dequantize.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale"],
                                           [name], name=f"{name}_dequantize", axis=axis))
    nodes = dequantize + list(graph.node)  # constants first: the graph stays sorted
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(tmp))


def export_qat(prepared, quantizer, spec: CropSpec, path: Path) -> None:
    """QuantizeLinear/DequantizeLinear ONNX of the fine-tuned graph, int8 weights folded
    (opset 18: the first with per-channel block attributes this exporter writes); activations
    stored as uint8 and biases as int32 (:mod:`.graph`)."""
    from motivnet_edge.compress.int8.qat import batch_dim, convert, split_output_concat

    converted = convert(prepared, fold_weights=True)
    names = list(HEAD_OUTPUTS if split_output_concat(converted) else HEAD_OUTPUTS[:1])
    x = torch.zeros(spec.input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(converted, (x,), str(path), dynamo=True, opset_version=18,
                          external_data=False,
                          input_names=["input"], output_names=names,
                          dynamic_shapes=batch_dim(), verbose=False)
    import onnx

    model = onnx.load(str(path))
    activations_to_uint8(model)
    biases_to_int32(model)
    onnx.save(model, str(path))


def from_qat(folder: Path, tmp: Path, cal: Calibration | None = None) -> None:
    """The fine-tuned student's QDQ graph, as it is."""
    shutil.copyfile(folder / artifact_name("student", "int8", "onnx"), tmp)
