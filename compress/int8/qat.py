"""Quantization-aware fine-tuning (PT2E) of a distilled student.

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
4. convert; the format table exports the one quantised graph three ways
   (:mod:`motivnet_edge.compress.int8.formats`): ONNX with QuantizeLinear / DequantizeLinear
   pairs (ONNX Runtime), the same ONNX read by OpenVINO (FakeQuantize, int8), and a
   full-integer TFLite (LiteRT). All three share the learnt scales.

The float source of these artifacts is the fine-tuned model with every quantisation simulated
in float exactly as the ONNX graph states it
(:func:`motivnet_edge.compress.inference.emulate`): the gate compares each
artifact with it, and the report gives its accuracy beside the FP32 student's.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from motivnet_edge.compress.distil.train import distillation_loss, make_tensor, sample_weights
from motivnet_edge.compress.progress import Progress
from motivnet_edge.compress.registry import QAT_TARGETS
from motivnet_edge.compress.settings import QatConfig
from motivnet_edge.targets.preprocess import CropSpec, FaceImage

log = logging.getLogger(__name__)


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


def _output_concat(graph):
    """(output node, the concatenation that makes the graph's only output) or (output, None)."""
    output = next(n for n in graph.graph.nodes if n.op == "output")
    outs = output.args[0] if isinstance(output.args[0], (tuple, list)) else output.args
    node = outs[0] if len(outs) == 1 else None
    is_cat = getattr(node, "op", None) == "call_function" and \
        getattr(node.target, "__name__", "").split(".")[0] == "cat"
    return output, node if is_cat else None


def float_output_concat(graph) -> int:
    """Leave a concatenation that makes the graph's output (a two-head student's class logits
    and valence/arousal) unquantised, so that each head keeps its own scale up to it (the
    exporters then split it: :func:`split_output_concat`). Returns the count (0 or 1)."""
    _, cat = _output_concat(graph)
    if cat is not None:
        cat.meta.pop("quantization_annotation", None)
    return int(cat is not None)


def split_output_concat(graph) -> bool:
    """Make the heads of a graph whose output is their concatenation its outputs, one each
    (in the concatenation's order), as the FP32 files have them. An int8 concatenation puts its
    inputs and output on one scale, set by the logits' range: LiteRT's converter did so and
    valence and arousal came out in steps of 0.195 (arousal MAE 0.052 against the simulated
    QAT model); as separate outputs each keeps its own scale. Returns True when it split one."""
    import torch.utils._pytree as pytree

    output, cat = _output_concat(graph)
    if cat is None:
        return False
    heads = tuple(cat.args[0])
    output.args = (heads,)
    graph.graph.erase_node(cat)
    codegen = graph.graph._codegen  # an exported module unflattens its outputs by this spec
    if getattr(codegen, "pytree_info", None) is not None:
        spec = pytree.tree_flatten(tuple(range(len(heads))))[1]
        codegen.pytree_info = codegen.pytree_info._replace(out_spec=spec)
    graph.recompile()
    return True


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
            float_output_concat(model)
            return model

    return FoldedBnQuantizer().set_global(config)


def batch_dim():
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
        graph = torch.export.export(model.eval(), (x,), dynamic_shapes=batch_dim()).module()
        _fuse_conv_bn_(graph)
        quantizer = _quantizer(weight_bits)
        return prepare_qat_pt2e(graph, quantizer), quantizer


def finetune(model: torch.nn.Module, spec: CropSpec, crops: Sequence[FaceImage],
             teacher: np.ndarray, cfg: QatConfig, progress: bool = True, values: int = 0):
    """QAT of ``model`` against its own FP32 outputs (``cfg.target`` student) or the
    ``teacher`` logits; ``teacher`` also draws the balanced batches; rows that end in
    ``values`` continuous outputs keep those too. Returns (prepared graph in
    eval mode, quantizer).

    Against the teacher, fine-tuning re-fitted the teacher and moved the model: the QAT model
    agreed with the FP32 student on 0.949 of held-out faces and scored 1.4 points below it on
    faces-dev (benchmarks/results/real-faces.md). Its job is to keep the FP32 student."""
    import copy

    import torchao.quantization.pt2e as tq

    if cfg.target not in QAT_TARGETS:
        raise ValueError(f"QAT target {cfg.target!r} is not one of {QAT_TARGETS}")
    torch.manual_seed(cfg.seed)
    reference = copy.deepcopy(model).eval() if cfg.target == "student" else None
    prepared, quantizer = prepare(model, spec, cfg.weight_bits)
    rng = np.random.default_rng(cfg.seed)
    weights = sample_weights(teacher, np.full(len(crops), -1), cfg.balance, values)
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
            loss = distillation_loss(out, target, no_labels, cfg.temperature, 0.0, values)
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
