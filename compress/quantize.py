"""INT8 quantisation, one function per format, each with an ordered list of recipes.

The first recipe is the fast one; the later ones are safer (another calibration method,
sensitive layers kept in float). :mod:`compress.validate` tries them in order until an
artifact agrees with the FP32 student.

- ONNX: ONNX Runtime static QDQ, per-channel int8 weights, uint8 activations.
- OpenVINO: NNCF post-training quantisation of the FP32 IR, or the gated ONNX QDQ artifact
  converted to IR.
- TFLite: full-integer through litert-torch's PT2E flow (symmetric, per-channel).

The last recipe of every format is ``weights-int8``: int8 per-channel weights dequantised
before each layer, activations float. It is what INT8 can always deliver when full-integer
inference flips too many decisions (a student whose decisions on the deployment domain are
near-ties): a file as small as full INT8, float arithmetic, and the report says so.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.export import nhwc_module, spec_for
from motivnet_edge.targets.formats import artifact_name, get_format
from motivnet_edge.targets.preprocess import FaceImage, make_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """One way to make an INT8 artifact.

    keep_float: layers left in float: ``first``/``last`` weighted layer, or every ``linear``.
    calibrate: ONNX Runtime's calibration method. preset, ranges, fast_bias_correction: NNCF's.
    source: the format whose gated INT8 artifact is converted instead of calibrating again.
    weights_only: int8 weights dequantised before each layer, activations float.
    """

    name: str
    keep_float: tuple[str, ...] = ()
    calibrate: str = "MinMax"
    preset: str = "PERFORMANCE"
    ranges: str | None = None
    fast_bias_correction: bool = True
    source: str | None = None
    weights_only: bool = False

    def to_dict(self) -> dict:
        """The recipe's name and what it sets (defaults left out)."""
        defaults = Recipe(self.name)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k == "name" or v != getattr(defaults, k)}


WEIGHTS_ONLY = Recipe("weights-int8", weights_only=True)

RECIPES: dict[str, list[Recipe]] = {
    "onnx": [
        Recipe("qdq-minmax-last-float", ("last",), calibrate="MinMax"),
        Recipe("qdq-percentile-ends-float", ("first", "last"), calibrate="Percentile"),
        Recipe("qdq-entropy-ends-float", ("first", "last"), calibrate="Entropy"),
        WEIGHTS_ONLY,
    ],
    "openvino": [
        # the classifier in float: NNCF's int8 classifier input clipped the most confident
        # crops of one class (4 of 513 demo crops flipped at FP32 margins near 5)
        Recipe("nncf-performance-last-float", ("last",), preset="PERFORMANCE"),
        # the gated ONNX QDQ artifact read by OpenVINO (its Q/DQ pairs become FakeQuantize
        # and run as int8): one calibration serving two runtimes
        Recipe("ort-qdq-to-ir", source="onnx"),
        # histogram ranges: measured on real face crops, median logit error 0.147 -> 0.111
        Recipe("nncf-performance-histogram-last-float", ("last",), preset="PERFORMANCE",
               ranges="HISTOGRAM", fast_bias_correction=False),
        Recipe("nncf-mixed-histogram-ends-float", ("first", "last"), preset="MIXED",
               ranges="HISTOGRAM", fast_bias_correction=False),
        WEIGHTS_ONLY,
    ],
    "tflite": [
        Recipe("pt2e-per-channel"),
        Recipe("pt2e-per-channel-linears-float", ("linear",)),
        WEIGHTS_ONLY,
    ],
}


def _ends(names: list[str], keep: list[str]) -> list[str]:
    out = []
    if "first" in keep and names:
        out.append(names[0])
    if "last" in keep and names:
        out.append(names[-1])
    return out


def quantize_onnx(fp32: Path, calib: np.ndarray, recipe: Recipe, tmp: Path) -> None:
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
        def __init__(self) -> None:
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"input": batch}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / f"pre{get_format('onnx').suffix}"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        weighted = [n.name for n in onnx.load(str(pre)).graph.node
                    if n.op_type in ("Conv", "Gemm", "MatMul")]
        extra = {"CalibPercentile": 99.999} if recipe.calibrate == "Percentile" else {}
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, recipe.calibrate),
                        nodes_to_exclude=_ends(weighted, recipe.keep_float),
                        extra_options=extra)


def quantize_openvino(fp32: Path, calib: np.ndarray, recipe: Recipe, tmp: Path,
                      transformer: bool = False) -> None:
    import nncf
    import openvino as ov

    if recipe.source:  # an INT8 ONNX made by ONNX Runtime, beside the FP32 file
        source = Path(fp32).parent / artifact_name("student", "int8", recipe.source)
        model = ov.convert_model(str(source))
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        return
    model = ov.Core().read_model(str(fp32))
    weighted = [op.get_friendly_name() for op in model.get_ordered_ops()
                if op.get_type_name() in ("Convolution", "MatMul")]
    kwargs = {}
    ignored = _ends(weighted, recipe.keep_float)
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored)
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if recipe.ranges:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(
            activations_range_estimator_params=getattr(RangeEstimatorParametersSet,
                                                       recipe.ranges))
    quantized = nncf.quantize(
        model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
        preset=getattr(nncf.QuantizationPreset, recipe.preset), subset_size=len(calib),
        fast_bias_correction=recipe.fast_bias_correction, **kwargs)
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)


def quantize_tflite(model: torch.nn.Module, calib: np.ndarray, recipe: Recipe,
                    tmp: Path) -> None:
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    x = torch.from_numpy(calib[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(nhwc_module(model), (x,)).module()
        quantizer = pq.PT2EQuantizer().set_global(
            pq.get_symmetric_quantization_config(is_per_channel=True))
        if "linear" in recipe.keep_float:
            # litert-torch can exclude by module type only: every Linear stays float (in a CNN
            # just the classifier; in a ViT most of the model, which the file inspection shows)
            quantizer.set_module_type(torch.nn.Linear, None)
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(len(calib)):
                prepared(torch.from_numpy(calib[i:i + 1]))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)
                             ).export(str(tmp))


def calibration_batch(crops: list[FaceImage], spec, fmt: str) -> np.ndarray:
    """Calibration inputs in the artifact's own layout, from the shared crop function."""
    return make_inputs(crops, spec_for(fmt, spec))


def quantize(fmt: str, fp32: Path, model: torch.nn.Module, calib: np.ndarray, recipe: Recipe,
             tmp: Path, transformer: bool = False) -> None:
    log.info("quantising %s with %s on %d crops", fmt, recipe.name, len(calib))
    if recipe.weights_only:
        quantize_weights_only(fmt, fp32, tmp)
    elif fmt == "onnx":
        quantize_onnx(fp32, calib, recipe, tmp)
    elif fmt == "openvino":
        quantize_openvino(fp32, calib, recipe, tmp, transformer)
    else:
        quantize_tflite(model, calib, recipe, tmp)


def weights_only_onnx(fp32: Path, tmp: Path) -> None:
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


def quantize_weights_only(fmt: str, fp32: Path, tmp: Path) -> None:
    if fmt == "onnx":
        weights_only_onnx(fp32, tmp)
    elif fmt == "openvino":  # OpenVINO keeps int8 constants + Convert/Multiply as compressed
        import openvino as ov

        with tempfile.TemporaryDirectory() as d:
            onnx_int8 = Path(d) / artifact_name("student", "int8", "onnx")
            weights_only_onnx(Path(fp32).parent / artifact_name("student", "fp32", "onnx"),
                              onnx_int8)
            ov.save_model(ov.convert_model(str(onnx_int8)), str(tmp), compress_to_fp16=False)
    else:
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer import recipe as aeq_recipe

        q = quantizer.Quantizer(str(fp32))
        q.load_quantization_recipe(aeq_recipe.weight_only_wi8_afp32())
        q.quantize().export_model(str(tmp), overwrite=True)
