"""OpenVINO IR in the compress chain, made from the ONNX files: the FP32 IR converted from the
FP32 ONNX, post-training INT8 (NNCF, or the gated INT8 ONNX converted), int8 weights only, and
the quantization-aware fine-tuned QDQ graph read as IR (FakeQuantize pairs, run as int8). Every
IR is saved with its weights as they are (``compress_to_fp16`` would halve them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from motivnet_edge.compress.int8.recipes import Calibration, Recipe
from motivnet_edge.targets.formats import artifact_name
from motivnet_edge.targets.preprocess import CropSpec


def onnx_to_ir(onnx_path: Path, xml: Path) -> None:
    """An ONNX file as OpenVINO IR (``xml`` and its ``.bin``)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)


def export(model: torch.nn.Module, spec: CropSpec, tmp: Path, out_dir: Path) -> None:
    """The FP32 IR, from the FP32 ONNX file exported before it."""
    onnx_to_ir(Path(out_dir) / artifact_name("student", "fp32", "onnx"), tmp)


def quantize(cal: Calibration, recipe: Recipe, tmp: Path) -> None:
    """NNCF post-training quantisation of the FP32 IR; or, for a recipe with a ``source``,
    that format's gated INT8 file beside it converted (its Q/DQ pairs become FakeQuantize)."""
    import nncf
    import openvino as ov

    if recipe.source:  # an INT8 ONNX made by ONNX Runtime, beside the FP32 file
        onnx_to_ir(Path(cal.fp32).parent / artifact_name("student", "int8", recipe.source), tmp)
        return
    calib = cal.inputs
    model = ov.Core().read_model(str(cal.fp32))
    weighted = [op.get_friendly_name() for op in model.get_ordered_ops()
                if op.get_type_name() in ("Convolution", "MatMul")]
    kwargs = {}
    ignored = recipe.kept_float(weighted, cal.heads)
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=ignored)
    if cal.transformer:
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


def weights_only(fp32: Path, tmp: Path) -> None:
    """The ONNX weights-only graph read as IR: OpenVINO keeps its int8 constants with a
    Convert/Multiply, as compressed weights."""
    from motivnet_edge.compress.int8 import onnx_ops

    with tempfile.TemporaryDirectory() as d:
        onnx_int8 = Path(d) / artifact_name("student", "int8", "onnx")
        onnx_ops.weights_only(Path(fp32).parent / artifact_name("student", "fp32", "onnx"),
                              onnx_int8)
        onnx_to_ir(onnx_int8, tmp)


def from_qat(folder: Path, tmp: Path, cal: Calibration | None = None) -> None:
    """The fine-tuned student's QDQ ONNX graph read by OpenVINO, with the quantisation its CPU
    plugin does not compute taken out (the outputs of convolutions a residual Add reads:
    :func:`.graph.unquantised_residual_convs`). That graph is written beside the QAT graph
    (:data:`motivnet_edge.compress.inference.QAT_GRAPHS` ``qat-openvino``): run with its
    quantisation simulated, it is the IR's float source."""
    import onnx

    from motivnet_edge.compress.inference import QAT_GRAPH, QAT_GRAPHS
    from motivnet_edge.compress.int8.graph import unquantised_residual_convs
    from motivnet_edge.targets.files import atomic_path

    model = onnx.load(str(folder / QAT_GRAPH))
    unquantised_residual_convs(model)
    graph = folder / QAT_GRAPHS["qat-openvino"]
    with atomic_path(graph) as path:
        onnx.save(model, str(path))
    onnx_to_ir(graph, tmp)
