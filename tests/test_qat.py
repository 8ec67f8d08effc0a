"""Quantization-aware fine-tuning turns a small model into full-INT8 files in every format,
each agreeing with the fine-tuned model it came from."""

import numpy as np
import pytest
import torch
from torch import nn

from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
from motivnet_edge.compress.fidelity import compare, run_artifact
from motivnet_edge.compress.inference import QAT_GRAPHS, emulate
from motivnet_edge.compress.int8 import graph as graph_edits
from motivnet_edge.compress.int8 import qat
from motivnet_edge.compress.int8.formats import OPS
from motivnet_edge.targets.formats import DEFAULT_FORMATS, artifact_name
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, FaceImage


class SmallNet(nn.Module):
    """Conv-BN-ReLU6 blocks with a depthwise conv and a residual add, like the students."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU6(inplace=True))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU6(inplace=True),
                                nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 7)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.dw(x)
        return self.head(x.mean((2, 3)))


def _small_student():
    """(spec, rng, crops, SmallNet with BN statistics of the crops, its logits on them)."""
    torch.manual_seed(0)
    spec = CropSpec(height=32, width=32, margin=0.0, mean=(127.5,), std=(127.5,))
    rng = np.random.default_rng(0)
    crops = [FaceImage(rng.integers(0, 255, (40, 40, 3), np.uint8)) for i in range(160)]
    model = SmallNet()
    model.train()
    with torch.no_grad():  # BN statistics of this data
        for i in range(0, 160, 32):
            model(torch.from_numpy(np.stack([c.input(spec) for c in crops[i:i + 32]])))
    model.eval()
    x = torch.from_numpy(np.stack([c.input(spec) for c in crops]))
    with torch.no_grad():  # each class standardised, at 3 standard deviations: every class
        z = model(x)       # wins on some crops (random, the head gave one class everywhere)
        std = z.std(0)
        model.head.weight.mul_((3 / std)[:, None])
        model.head.bias.copy_(3 * (model.head.bias - z.mean(0)) / std)
        logits = model(x).numpy()
    return spec, rng, crops, model, logits


@pytest.mark.slow
def test_qat_makes_full_int8_files_that_agree_with_their_float_source(tmp_path):
    spec, rng, crops, model, teacher = _small_student()
    cfg = qat.QatConfig(steps=30, batch=32, lr=1e-4, balance=0.0, augment=0.0)
    prepared, quantizer = qat.finetune(model, spec, crops, teacher * 3, cfg, progress=False)
    folder = tmp_path / "qat"
    folder.mkdir()
    for fmt, ops in OPS.items():  # the formats that export the fine-tuned graph themselves
        if ops.export_qat is not None:
            path = folder / artifact_name("student", "int8", fmt)
            ops.export_qat(prepared, quantizer, spec, path)
    held_out = [FaceImage(rng.integers(0, 255, (40, 40, 3), np.uint8)) for _ in range(200)]
    for fmt in DEFAULT_FORMATS:
        path = tmp_path / artifact_name("student", "int8", fmt)
        OPS[fmt].from_qat(folder, path)  # the IR's also writes the graph of its float source
        source = emulate(folder / QAT_GRAPHS[OPS[fmt].qat_source], held_out, spec)
        layout = "nhwc" if fmt == "tflite" else "nchw"
        embed_metadata(path, {"labels": list(AFFECTNET7), "precision": "int8",
                              "crop": {**spec.to_dict(), "layout": layout}})
        what = inspect_precision(path)
        assert what["precision"] == "int8" and what["int8_weight_tensors"] >= 3, (fmt, what)
        logits, _ = run_artifact(path, held_out, check=False)
        scores = compare(logits, source, None, None)
        assert scores["agreement_with_float"] >= 0.95, (fmt, scores)
        assert scores["cosine_with_float"] > 0.99, (fmt, scores)
    # int8 weights stored in the ONNX file, not float ones quantised at run time
    assert inspect_precision(tmp_path / artifact_name("student", "int8", "onnx")
                             )["float_weight_tensors"] == 0
    _openvino_computes_its_own_graph(tmp_path, folder, held_out, spec)
    _the_gate_refuses_a_scale_off_by_four(tmp_path, folder, held_out, spec)


def _openvino_computes_its_own_graph(tmp_path, folder, held_out, spec):
    """OpenVINO adds the residual branch's 1x1 convolution to the Add unrounded: the IR
    agrees more closely with the QAT graph that leaves that quantisation out."""
    import onnx

    plain, openvino = (onnx.load(str(folder / QAT_GRAPHS[s])) for s in ("qat", "qat-openvino"))
    assert graph_edits.unquantised_residual_convs(plain) == 1
    assert len(plain.graph.node) == len(openvino.graph.node)  # that pair, out
    logits, _ = run_artifact(tmp_path / artifact_name("student", "int8", "openvino"), held_out,
                             check=False)
    error = {s: np.abs(logits - emulate(folder / QAT_GRAPHS[s], held_out, spec)).mean()
             for s in ("qat", "qat-openvino")}
    assert error["qat-openvino"] < error["qat"] / 2, error


def _the_gate_refuses_a_scale_off_by_four(tmp_path, folder, held_out, spec):
    """Real quantisation damage (one convolution's weight scales four times too large): the
    old rule (agreement on every face, no sure flip) refused it, and so does the gate."""
    import onnx
    from onnx import numpy_helper

    from motivnet_edge.compress.settings import Gate, flip_margin

    qat_graph = folder / QAT_GRAPHS["qat"]
    model = onnx.load(str(qat_graph))
    made = {out: node for node in model.graph.node for out in node.output}
    conv = [n for n in model.graph.node if n.op_type == "Conv"][0]  # the stem
    scale = next(i for i in model.graph.initializer if i.name == made[conv.input[1]].input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 4, scale.name))
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    embed_metadata(damaged, {"labels": list(AFFECTNET7), "precision": "int8",
                             "crop": {**spec.to_dict(), "layout": "nchw"}})
    scores = compare(run_artifact(damaged, held_out, check=False)[0],
                     emulate(qat_graph, held_out, spec), None, None)
    assert scores["agreement_with_float"] < 0.99 or flip_margin(scores) > 1.0, scores
    assert not Gate().passes(scores), scores


@pytest.mark.slow
def test_qat_keeps_the_fp32_student_unless_told_to_fit_the_teacher():
    """By default the quantised model learns the FP32 student's own outputs; with target
    teacher it learns the teacher's, here a teacher that answers otherwise."""
    import copy

    spec, _, crops, model, logits = _small_student()
    other = np.roll(logits, 1, axis=1) * 3
    x = torch.from_numpy(np.stack([c.input(spec) for c in crops]))
    agreement = {}
    for target in ("student", "teacher"):
        cfg = qat.QatConfig(steps=40, batch=32, lr=1e-2, balance=0.0, augment=0.0,
                            target=target)
        prepared, _ = qat.finetune(copy.deepcopy(model), spec, crops, other, cfg,
                                   progress=False)
        with torch.no_grad():
            agreement[target] = float(np.mean(prepared(x).numpy().argmax(1) == logits.argmax(1)))
    assert agreement["student"] >= 0.9, agreement
    assert agreement["teacher"] < agreement["student"] - 0.3, agreement
    with pytest.raises(ValueError, match="'labels'"):
        qat.finetune(model, spec, crops, other, qat.QatConfig(steps=1, target="labels"),
                     progress=False)


def test_onnx_activations_are_uint8_and_weights_int8_with_the_same_numbers(tmp_path):
    """ONNX Runtime's x86 kernels are u8s8: activations are stored as uint8 (zero point + 128),
    weights as int8, and the graph computes exactly what the int8 one did."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(-8, 8, dtype=np.int8).reshape(4, 4, 1, 1), "w")
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
         helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
         helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"]),
         helper.make_node("Conv", ["xd", "wd"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, numpy_helper.from_array(np.array(0.05, np.float32), "s"),
         numpy_helper.from_array(np.array(-7, np.int8), "z"),
         numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
         numpy_helper.from_array(np.array(0, np.int8), "wz")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    x = np.random.default_rng(0).normal(0, 2, (1, 4, 3, 3)).astype(np.float32)

    def run(m):
        path = tmp_path / "m.onnx"
        onnx.save(m, str(path))
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]

    before = run(model)
    assert graph_edits.activations_to_uint8(model) == 2
    zps = {i.name: i.data_type for i in model.graph.initializer}
    assert zps["wz"] == TensorProto.INT8 and zps["z_u8"] == TensorProto.UINT8 and "z" not in zps
    np.testing.assert_array_equal(run(model), before)


def test_int32_biases_make_the_simulated_graph_compute_what_the_engine_does(tmp_path):
    """ONNX Runtime runs a quantised Conv with its bias rounded to int32 at s_input x s_weight;
    with the bias left in float, the graph simulated in float (the gate's float source) added
    the exact bias instead, and a large weight scale made that a visible difference."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = rng.integers(-1, 2, (8, 4, 3, 3)).astype(np.int8)
    # bias steps of 0.05 against output steps of 0.0613 (no exact ties): rounding the bias
    # moves many outputs
    bias = (rng.integers(-20, 20, 8) + 0.45) * 0.05  # 0.45 of a step off the grid
    inits = [numpy_helper.from_array(weights, "w"),
             numpy_helper.from_array(np.full(8, 0.5, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
             numpy_helper.from_array(bias.astype(np.float32), "b"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array(0.0613, np.float32), "so"),
             numpy_helper.from_array(np.array(128, np.uint8), "zo")]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
         helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
         helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
         helper.make_node("Conv", ["xd", "wd", "b"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("QuantizeLinear", ["y", "so", "zo"], ["yq"]),
         helper.make_node("DequantizeLinear", ["yq", "so", "zo"], ["out"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    x = rng.normal(0, 0.15, (1, 4, 8, 8)).astype(np.float32)

    def run(m, fused: bool):
        import onnxruntime as ort

        path = tmp_path / "m.onnx"
        onnx.save(m, str(path))
        opts = ort.SessionOptions()
        if not fused:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]

    engine = run(model, fused=True)
    assert not np.array_equal(run(model, fused=False), engine)  # the float bias differs
    assert graph_edits.biases_to_int32(model) == 1
    stored = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert "b" not in stored and stored["b_int32"].dtype == np.int32
    np.testing.assert_allclose(stored["b_int32_scale"], 0.1 * 0.5)
    np.testing.assert_array_equal(run(model, fused=False), engine)
    np.testing.assert_array_equal(run(model, fused=True), engine)
    # for rknn-toolkit2, which cannot fold them: the rounded biases stored back as float, the
    # same numbers
    assert graph_edits.float_biases(model) == 1
    assert not any(i.data_type == onnx.TensorProto.INT32 for i in model.graph.initializer)
    np.testing.assert_array_equal(run(model, fused=False), engine)
