"""The compress chain's format table: what export and INT8 do for each artifact format, one entry
per format (what the device knows of a format is :mod:`motivnet_edge.targets.formats`).

An entry holds the format's FP32 export, its post-training INT8 recipes in the order they are
tried, the function that applies one, int8 weights only (the last resort), and how the
quantization-aware fine-tuned graph becomes its artifact (``export_qat`` writes it from the
fine-tuned graph; ``from_qat`` copies or converts what was written). Adding a format is one entry
here, one module beside this file, and its entry in the targets table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from motivnet_edge.compress.int8 import onnx_ops, openvino_ops, rknn_ops, tflite_ops
from motivnet_edge.compress.int8.recipes import WEIGHTS_ONLY, Calibration, Recipe
from motivnet_edge.targets.formats import format_of, get_format
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormatOps:
    """export(model, spec, tmp, out_dir): the FP32 artifact at ``tmp``; quantize(calibration,
    recipe, tmp); weights_only(fp32, tmp); export_qat(prepared, quantizer, spec, path) or None
    when the format's QAT artifact is made from another's; from_qat(qat_folder, tmp,
    calibration) (only a simulated format reads the calibration);
    qat_source: the float source of the QAT artifact, as the format's engine computes the
    QAT graph (:data:`motivnet_edge.compress.inference.QAT_GRAPHS`). simulated: built and run
    in a simulator in one call, when no engine here can open the file: quantize and
    from_qat return the simulator's rows for the held-out inputs; export is None (no FP32
    file)."""

    name: str
    export: Callable | None
    recipes: tuple[Recipe, ...]
    quantize: Callable
    weights_only: Callable
    from_qat: Callable
    export_qat: Callable | None = None
    qat_source: str = "qat"
    simulated: bool = False


OPS: dict[str, FormatOps] = {o.name: o for o in (
    FormatOps("onnx", onnx_ops.export, (
        Recipe("qdq-minmax-last-float", ("last",), calibrate="MinMax"),
        Recipe("qdq-percentile-ends-float", ("first", "last"), calibrate="Percentile"),
        Recipe("qdq-entropy-ends-float", ("first", "last"), calibrate="Entropy"),
        WEIGHTS_ONLY,
    ), onnx_ops.quantize, onnx_ops.weights_only, onnx_ops.from_qat, onnx_ops.export_qat),
    # made from the ONNX files: the FP32 IR from the FP32 ONNX (exported first)
    FormatOps("openvino", openvino_ops.export, (
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
    ), openvino_ops.quantize, openvino_ops.weights_only, openvino_ops.from_qat,
        qat_source="qat-openvino"),
    FormatOps("tflite", tflite_ops.export, (
        Recipe("pt2e-per-channel"),
        Recipe("pt2e-per-channel-linears-float", ("linear",)),
        WEIGHTS_ONLY,
    ), tflite_ops.quantize, tflite_ops.weights_only, tflite_ops.from_qat,
        tflite_ops.export_qat),
    # Rockchip's NPU, through rknn-toolkit2 in its own environment (rknn_ops.py); recipes are
    # the toolkit's calibration algorithms; no weights-only INT8 exists for it
    FormatOps("rknn", None, (
        Recipe("rknn-normal", calibrate="normal"),
        Recipe("rknn-mmse", calibrate="mmse"),
    ), rknn_ops.quantize, rknn_ops.weights_only, rknn_ops.from_qat, simulated=True),
)}


def is_simulated(path: Path) -> bool:
    """True for an artifact no engine here opens, run in a simulator when it is built."""
    ops = OPS.get(format_of(path).name)
    return ops is not None and ops.simulated


def calibration(fmt: str, fp32: Path, model, crops: list[FaceImage], spec: CropSpec,
                transformer: bool = False, heads: int = 1) -> Calibration:
    """What ``fmt``'s INT8 step works from: calibration inputs cut by the one crop function, in
    the format's own layout."""
    return Calibration(fp32, model, make_inputs(crops, get_format(fmt).crop(spec)), transformer,
                       heads)


def quantize(fmt: str, cal: Calibration, recipe: Recipe, tmp: Path):
    """One post-training recipe applied to one format, the INT8 file written at ``tmp``; a
    simulated format's rows for ``cal.held_out`` (else None)."""
    log.info("quantising %s with %s on %d crops", fmt, recipe.name, len(cal.inputs))
    ops = OPS[fmt]
    if recipe.weights_only:
        return ops.weights_only(cal.fp32, tmp)
    return ops.quantize(cal, recipe, tmp)
