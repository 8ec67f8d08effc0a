"""Feature hints (``distil --hint WEIGHT``): the student also learns the teacher's penultimate
features, the embedding its last linear layer reads, not only the 7 logits that layer makes of
it (Romero et al. 2015, "FitNets"; with few faces, hundreds of numbers per view instead of
seven).

The teacher must be an ONNX file: the embedding is the input of the graph's last matrix product
(``MatMul``, ``Gemm``, ``QLinearMatMul``; behind a ``QuantizeLinear`` in an INT8 file), read by
OpenVINO beside the logits in one pass. The student gets a linear layer on its pooled features
beside its class head (:class:`Hinted`), trained to give that embedding; the layer exists only
while training: in eval mode, and in the saved and exported student, only the class head is
left. Consistent teaching only (the teacher is run on every view).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.models.students import class_head
from motivnet_edge.compress.models.teachers import EngineTeacher, Teacher
from motivnet_edge.targets.engines.openvino import default_precision
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.preprocess import CropSpec, normalize_batch

PRODUCTS = ("MatMul", "Gemm", "QLinearMatMul", "MatMulInteger")
PASS_THROUGH = ("DequantizeLinear", "QuantizeLinear", "Add", "QLinearAdd", "Identity",
                "Softmax", "Reshape", "Squeeze")


def embedding_tensor(path: Path) -> str:
    """The name of the tensor the last matrix product of ONNX file ``path`` reads: walk back
    from the first output through quantize/dequantize, bias adds and reshapes."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    made_by = {out: node for node in graph.node for out in node.output}
    node = made_by.get(graph.output[0].name)
    while node is not None and node.op_type in PASS_THROUGH:
        node = made_by.get(node.input[0])
    if node is None or node.op_type not in PRODUCTS:
        raise MotivnetError(f"--hint: {path} does not end in a linear layer (MatMul or Gemm "
                            f"before its output {graph.output[0].name!r}); its features "
                            f"cannot be read")
    name = node.input[0]
    before = made_by.get(name)
    return before.input[0] if before is not None and before.op_type == "QuantizeLinear" \
        else name


class HintTeacher:
    """``teacher`` (an ONNX file) run in OpenVINO on the CPU at the openvino engine's precision
    (float32: left to itself OpenVINO runs bf16 on CPUs that have it) with its embedding as a
    second output: :meth:`predict_cut` gives each view's row (as the teacher's) with the
    embedding appended."""

    def __init__(self, teacher: Teacher) -> None:
        path = teacher.path
        if not isinstance(teacher, EngineTeacher) or path is None \
                or Path(path).suffix.lower() != ".onnx":
            raise MotivnetError(f"--hint needs a teacher in an ONNX file (its features are "
                                f"read from the graph); teacher {path or 'built-in'} is not")
        try:
            import openvino as ov
        except ImportError as exc:
            raise MotivnetError("--hint runs the teacher in OpenVINO: pip install "
                                "openvino") from exc
        self.teacher = teacher
        self.tensor = embedding_tensor(Path(path))
        core = ov.Core()
        model = core.read_model(str(path))
        model.add_outputs([self.tensor])
        self.compiled = core.compile_model(model, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": default_precision("CPU")})
        self.request = self.compiled.create_infer_request()
        self.width = int(np.prod(self.compiled.outputs[-1].get_partial_shape().get_min_shape()
                                 [1:]))

    @property
    def crop(self) -> CropSpec:
        return self.teacher.crop

    def predict_cut(self, images: np.ndarray) -> np.ndarray:
        """Rows for faces cut to the teacher's input: the teacher's outputs, then the
        embedding (one face at a time, as the teacher's own engine runs this file)."""
        batch = normalize_batch(images, self.crop)
        raw, hints = [], []
        for i in range(len(batch)):
            result = self.request.infer({0: batch[i:i + 1]})
            raw.append(result[self.compiled.outputs[0]].reshape(1, -1))
            hints.append(result[self.compiled.outputs[-1]].reshape(1, -1))
        rows = self.teacher.rows(np.concatenate(raw))
        return np.concatenate([rows, np.concatenate(hints)], 1).astype(np.float32)


class Hinted(torch.nn.Module):
    """A timm student with a linear hint layer on its pooled features: in training mode rows of
    its outputs with ``width`` hint columns appended; in eval mode the student's outputs
    alone (what every measurement sees)."""

    def __init__(self, body: torch.nn.Module, width: int) -> None:
        super().__init__()
        self.body = body
        self.hint = torch.nn.Linear(class_head(body).in_features, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.body(x)
        features = []
        handle = class_head(self.body).register_forward_pre_hook(
            lambda _module, args: features.append(args[0]))
        try:
            out = self.body(x)
        finally:
            handle.remove()
        return torch.cat([out, self.hint(features[0])], 1)


def hint_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error relative to the embedding's mean square over the batch (scale-free: a
    student that gives zeros scores 1)."""
    return ((pred - target) ** 2).mean() / (target ** 2).mean().clamp_min(1e-8)
