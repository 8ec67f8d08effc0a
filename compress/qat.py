"""Quantization-aware fine-tuning (PT2E) of a distilled student, and its INT8 artifacts.

Post-training INT8 of a student distilled on real faces flips too many decisions (measured on
EfficientNet-Lite0: ONNX Runtime static QDQ agreed with the FP32 student on 0.945 of 1,043
held-out real faces): its decisions are close, and rounding moves them. Here the student is
fine-tuned with the quantisation simulated, against its own FP32 outputs, so it learns
weights and ranges that survive int8:

1. ``torch.export`` the student and fold every BatchNorm into its convolution (what every
   engine runs);
2. annotate it with LiteRT's PT2E quantizer (int8 per-channel symmetric weights, int8
   per-tensor activations) in QAT mode, conv-bn patterns left out since BN is folded;
3. let the observers see the data, fine-tune with KD at a low learning rate, then freeze the
   observers for the last steps;
4. convert, and export the one quantised graph three ways: ONNX with QuantizeLinear /
   DequantizeLinear pairs (ONNX Runtime), the same ONNX read by OpenVINO (FakeQuantize, int8),
   and a full-integer TFLite (LiteRT). All three share the learnt scales.

The float source of these artifacts is the fine-tuned model with every quantisation simulated
in float exactly as the ONNX graph states it (``int8_stage.emulate``): the gate compares each
artifact with it, and the report gives its accuracy beside the FP32 student's.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.progress import Progress
from motivnet_edge.compress.registry import QAT_TARGETS
from motivnet_edge.compress.train import distillation_loss, make_tensor, sample_weights
from motivnet_edge.targets.preprocess import CropSpec, FaceImage

log = logging.getLogger(__name__)


@dataclass
class QatConfig:
    """steps: fine-tuning steps (0: no QAT); observers stop updating after ``freeze`` of them;
    lr: peak learning rate (cosine to 0); temperature and balance as in distillation;
    target: what the quantised model learns to reproduce: ``student``, the FP32 student's own
    outputs on each step's batch, or ``teacher``, the teacher's cached outputs."""

    steps: int = 300
    batch: int = 64
    lr: float = 2e-5
    freeze: float = 0.7
    temperature: float = 2.0
    balance: float = 0.5
    augment: float = 0.5
    weight_bits: int = 8
    target: str = "student"
    seed: int = 0


CONVS = ("conv1d", "conv2d", "convolution")
CLAMPS = ("hardtanh", "hardtanh_", "relu6", "clamp")


def _op(node, names) -> bool:
    return node.op == "call_function" and getattr(node.target, "__name__", "").split(".")[0] \
        in names


def fuse_conv_clamp(graph, config) -> int:
    """Quantise a convolution and the ReLU6 (hardtanh 0..6) after it as one: the output after
    the clamp, none between. LiteRT's annotator fuses conv+ReLU only; left alone, the
    pre-activation range of a stem convolution (-146..78 in EfficientNet-Lite0) set a step of
    0.88 for values in 0..6, and every engine fuses conv+ReLU6 anyway. Returns the count."""
    from litert_torch.quantize.pt2e_quantizer_utils import get_output_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    fused = 0
    for node in graph.graph.nodes:
        conv = node.args[0] if _op(node, CLAMPS) and node.args else None
        if conv is None or not _op(conv, CONVS) or len(conv.users) != 1:
            continue
        annotation = conv.meta.get("quantization_annotation")
        if annotation is None:
            continue
        annotation.output_qspec = None
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=get_output_act_qspec(config), _annotated=True)
        fused += 1
    return fused


def _quantizer(weight_bits: int = 8):
    import dataclasses

    from litert_torch.quantize import pt2e_quantizer as pq

    config = pq.get_symmetric_quantization_config(is_per_channel=True, is_qat=True)
    if weight_bits < 8:  # int8 storage, a narrower range: see QatConfig.weight_bits
        limit = 2 ** (weight_bits - 1) - 1
        config = dataclasses.replace(config, weight=dataclasses.replace(
            config.weight, quant_min=-limit, quant_max=limit))

    class FoldedBnQuantizer(pq.PT2EQuantizer):
        """BatchNorm is folded before annotation, so the QAT-only conv-bn patterns (which
        this torchao cannot build) have nothing to match; conv+ReLU6 is one quantised op."""

        STATIC_QAT_ONLY_OPS: list[str] = []

        def annotate(self, model):
            model = super().annotate(model)
            log.debug("conv+relu6 fused for quantisation: %d", fuse_conv_clamp(model, config))
            return model

    return FoldedBnQuantizer().set_global(config)


def _batch_dim():
    return ({0: torch.export.Dim("batch", min=1, max=1024)},)


def prepare(model: torch.nn.Module, spec: CropSpec, weight_bits: int = 8):
    """The student exported, BN folded, annotated for QAT: (prepared graph, quantizer)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    x = torch.zeros((2, *spec.input_shape[1:]))
    for module in model.modules():  # in-place activations confuse the quantised graph
        if getattr(module, "inplace", False):
            module.inplace = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(model.eval(), (x,), dynamic_shapes=_batch_dim()).module()
        _fuse_conv_bn_(graph)
        quantizer = _quantizer(weight_bits)
        return prepare_qat_pt2e(graph, quantizer), quantizer


def finetune(model: torch.nn.Module, spec: CropSpec, crops: Sequence[FaceImage],
             teacher: np.ndarray, cfg: QatConfig, progress: bool = True):
    """QAT of ``model`` against its own FP32 outputs (``cfg.target`` student) or the
    ``teacher`` logits; ``teacher`` also draws the balanced batches. Returns (prepared graph in
    eval mode, quantizer).

    Against the teacher, fine-tuning re-fitted the teacher and moved the model: the QAT model
    agreed with the FP32 student on 0.949 of held-out faces and scored 1.6 points below it on
    faces-dev. Its job is to keep the FP32 student."""
    import copy

    import torchao.quantization.pt2e as tq

    if cfg.target not in QAT_TARGETS:
        raise ValueError(f"QAT target {cfg.target!r} is not one of {QAT_TARGETS}")
    torch.manual_seed(cfg.seed)
    reference = copy.deepcopy(model).eval() if cfg.target == "student" else None
    prepared, quantizer = prepare(model, spec, cfg.weight_bits)
    rng = np.random.default_rng(cfg.seed)
    weights = sample_weights(teacher, np.full(len(crops), -1), cfg.balance)
    with torch.no_grad():  # the observers see plain data first
        for _ in range(4):
            idx = rng.choice(len(crops), cfg.batch)
            prepared(make_tensor([crops[i] for i in idx], spec))
    opt = torch.optim.AdamW(prepared.parameters(), lr=cfg.lr, weight_decay=0.0)
    teacher_t = torch.as_tensor(teacher)
    no_labels = torch.full((cfg.batch,), -1)
    with Progress(cfg.steps, "quantization-aware fine-tuning", "step", progress) as bar:
        for step in range(cfg.steps):
            tq.move_exported_model_to_train(prepared)
            if step == int(cfg.freeze * cfg.steps):
                prepared.apply(tq.disable_observer)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            idx = rng.choice(len(crops), cfg.batch, p=weights)
            x = make_tensor([crops[i] for i in idx], spec, rng, cfg.augment)
            out = prepared(x)
            if reference is None:
                target = teacher_t[idx]
            else:
                with torch.no_grad():
                    target = reference(x)
            loss = distillation_loss(out, target, no_labels, cfg.temperature, 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1, loss=f"{loss.item():.3f}")
    tq.move_exported_model_to_eval(prepared)
    tq.allow_exported_model_train_eval(prepared)  # exporters call .eval()
    prepared.apply(tq.disable_observer)
    return prepared, quantizer


def convert(prepared, fold_weights: bool = False):
    """The quantised graph (``prepared`` stays as it is). ``fold_weights``: int8 weight
    tensors (ONNX); else float weights quantised in the graph (what LiteRT's converter takes)."""
    import copy

    import torchao.quantization.pt2e as tq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_pt2e(copy.deepcopy(prepared), fold_quantize=fold_weights)
    tq.allow_exported_model_train_eval(converted)
    return converted


def export_onnx_qdq(converted, spec: CropSpec, path: Path) -> None:
    """QuantizeLinear/DequantizeLinear ONNX of the converted graph (opset 18: the first with
    per-channel block attributes this exporter writes)."""
    x = torch.zeros(spec.input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(converted, (x,), str(path), dynamo=True, opset_version=18,
                          external_data=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_shapes=_batch_dim(), verbose=False)
    import onnx

    model = onnx.load(str(path))
    activations_to_uint8(model)
    biases_to_int32(model)
    onnx.save(model, str(path))


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
    import numpy as np
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


def export_tflite(converted, quantizer, spec: CropSpec, path: Path) -> None:
    """Full-integer TFLite with NHWC input (the layout LiteRT and XNNPACK prefer)."""
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()
    from litert_torch.quantize.quant_config import QuantConfig

    from motivnet_edge.compress.export import spec_for

    x = torch.zeros(spec_for("tflite", spec).input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(ChannelsLast(converted), (x,),
                             quant_config=QuantConfig(pt2e_quantizer=quantizer)
                             ).export(str(path))


class ChannelsLast(torch.nn.Module):
    """NHWC in, the NCHW graph inside (LiteRT's own wrapper cannot hold a converted graph)."""

    def __init__(self, graph: torch.nn.Module) -> None:
        super().__init__()
        self.body = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 3, 1, 2))
