"""Shared inference for every stage: a PyTorch model's logits on crops, a QAT graph with its
quantisation simulated, and the float source an artifact's gate compares with.

The bottom of compress/ beside the model zoo: distil, int8 and gate all run models through
these, so no stage reaches into another's module for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.engine import join_outputs
from motivnet_edge.targets.engines.onnxruntime import cpu_session
from motivnet_edge.targets.formats import artifact_name
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_inputs

QAT_GRAPH = artifact_name("student", "int8", "onnx")  # under work/qat/
# the QAT model's graph as each engine's arithmetic has it, by float source name (under work/qat/)
QAT_GRAPHS = {"qat": QAT_GRAPH, "qat-openvino": "student-int8-openvino-arithmetic.onnx"}
FLOAT_SOURCES = {"student": "the FP32 student (student.pth)",
                 "qat": "the quantization-aware fine-tuned student, quantisation simulated "
                        f"(work/qat/{QAT_GRAPH}, no kernel fusion)",
                 "qat-openvino": "the quantization-aware fine-tuned student as OpenVINO's CPU "
                                 "plugin computes it: quantisation simulated except on the "
                                 "outputs of convolutions a residual Add reads (work/qat/"
                                 f"{QAT_GRAPHS['qat-openvino']})"}


def channels_last(batch: np.ndarray):
    """A batch as a torch tensor, channels-last in memory (oneDNN convolutions run faster on
    CPU that way)."""
    import torch

    x = torch.from_numpy(batch)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def predict(model, crops: Sequence[FaceImage], spec: CropSpec, device: str = "cpu",
            batch: int = 128) -> np.ndarray:
    """Output rows of a PyTorch ``model`` for ``crops``, in eval mode, without gradients."""
    import torch

    model.eval()
    with torch.no_grad():
        outs = [model(channels_last(make_inputs(crops[i:i + batch], spec)).to(device))
                .float().cpu() for i in range(0, len(crops), batch)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)


def simulation_session(onnx_path: Path):
    """An ONNX Runtime session that runs a QDQ graph with every quantisation simulated in
    float: graph optimisations off, so Quantize/DequantizeLinear run as written and nothing is
    fused into integer kernels."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return cpu_session(onnx_path, opts)


def emulate(onnx_path: Path, crops: Sequence[FaceImage], spec: CropSpec,
            batch: int = 64) -> np.ndarray:
    """Logits of a QDQ ONNX graph with every quantisation simulated in float
    (:func:`simulation_session`): the fine-tuned QAT model, exactly as exported."""
    sess = simulation_session(onnx_path)
    name = sess.get_inputs()[0].name
    return np.concatenate([join_outputs(sess.run(None, {name: make_inputs(crops[i:i + batch],
                                                                          spec)}))
                           for i in range(0, len(crops), batch)])


def float_source_logits(folder: RunFolder, meta: dict, crops: Sequence[FaceImage],
                        spec: CropSpec, student_logits: np.ndarray) -> np.ndarray:
    """The logits an artifact's gate compares with, on ``crops``: the simulated QAT graph's
    (as the artifact's engine computes it) for an artifact exported from it, else the FP32
    student's."""
    graph = QAT_GRAPHS.get(meta.get("recipe", {}).get("float_source", "student"))
    if graph is not None:
        return emulate(folder.qat / graph, crops, spec)
    return student_logits


def quantize_results(out: Path) -> dict:
    """What the quantize stage recorded for an output folder (empty before it ran)."""
    path = RunFolder(out).quantize_results
    return json.loads(path.read_text()) if path.is_file() else {}
