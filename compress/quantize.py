"""INT8 quantisation, one function per format, each with an ordered list of recipes.

The first recipe is the fast one; the later ones are safer (another calibration method,
sensitive layers kept in float). :mod:`compress.validate` tries them in order until an
artifact agrees with the FP32 student.

- ONNX: ONNX Runtime static QDQ, per-channel int8 weights, uint8 activations.
- OpenVINO: NNCF post-training quantisation of the FP32 IR.
- TFLite: full-integer through litert-torch's PT2E flow (symmetric, per-channel).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from compress.export import nhwc_module, spec_for

log = logging.getLogger(__name__)

RECIPES: dict[str, list[dict]] = {
    "onnx": [
        {"name": "qdq-minmax-per-channel", "calibrate": "MinMax", "keep_float": []},
        {"name": "qdq-percentile-ends-float", "calibrate": "Percentile",
         "keep_float": ["first", "last"]},
        {"name": "qdq-entropy-ends-float", "calibrate": "Entropy", "keep_float": ["first", "last"]},
    ],
    "openvino": [
        {"name": "nncf-performance", "preset": "PERFORMANCE", "keep_float": []},
        {"name": "nncf-mixed-ends-float", "preset": "MIXED", "keep_float": ["first", "last"],
         "fast_bias_correction": False},
    ],
    "tflite": [
        {"name": "pt2e-per-channel", "keep_float": []},
        {"name": "pt2e-per-channel-classifier-float", "keep_float": ["last"]},
    ],
}


def _ends(names: list[str], keep: list[str]) -> list[str]:
    out = []
    if "first" in keep and names:
        out.append(names[0])
    if "last" in keep and names:
        out.append(names[-1])
    return out


def quantize_onnx(fp32: Path, calib: np.ndarray, recipe: dict, tmp: Path) -> None:
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
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        weighted = [n.name for n in onnx.load(str(pre)).graph.node
                    if n.op_type in ("Conv", "Gemm", "MatMul")]
        extra = {"CalibPercentile": 99.99} if recipe["calibrate"] == "Percentile" else {}
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, recipe["calibrate"]),
                        nodes_to_exclude=_ends(weighted, recipe["keep_float"]),
                        extra_options=extra)


def quantize_openvino(fp32: Path, calib: np.ndarray, recipe: dict, tmp: Path,
                      transformer: bool = False) -> None:
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32))
    weighted = [op.get_friendly_name() for op in model.get_ordered_ops()
                if op.get_type_name() in ("Convolution", "MatMul")]
    kwargs = {}
    ignored = _ends(weighted, recipe["keep_float"])
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored)
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    quantized = nncf.quantize(
        model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
        preset=getattr(nncf.QuantizationPreset, recipe["preset"]), subset_size=len(calib),
        fast_bias_correction=recipe.get("fast_bias_correction", True), **kwargs)
    ov.save_model(quantized, str(tmp), compress_to_fp16=False)


def quantize_tflite(model: torch.nn.Module, calib: np.ndarray, recipe: dict, tmp: Path) -> None:
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    x = torch.from_numpy(calib[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(nhwc_module(model), (x,)).module()
        quantizer = pq.PT2EQuantizer().set_global(
            pq.get_symmetric_quantization_config(is_per_channel=True))
        if "last" in recipe["keep_float"]:
            linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
            for name in linears[-1:]:
                quantizer.set_module_type(type(model.get_submodule(name)), None)
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(len(calib)):
                prepared(torch.from_numpy(calib[i:i + 1]))
        converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer)
                             ).export(str(tmp))


def calibration_batch(crops: list[np.ndarray], spec, fmt: str) -> np.ndarray:
    """Calibration inputs in the artifact's own layout, from the shared crop function."""
    from edge.preprocess import make_input

    s = spec_for(fmt, spec)
    return np.stack([make_input(c, None, s) for c in crops])


def quantize(fmt: str, fp32: Path, model: torch.nn.Module, calib: np.ndarray, recipe: dict,
             tmp: Path, transformer: bool = False) -> None:
    log.info("quantising %s with %s on %d crops", fmt, recipe["name"], len(calib))
    if fmt == "onnx":
        quantize_onnx(fp32, calib, recipe, tmp)
    elif fmt == "openvino":
        quantize_openvino(fp32, calib, recipe, tmp, transformer)
    else:
        quantize_tflite(model, calib, recipe, tmp)
