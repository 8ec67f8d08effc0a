"""Feature hints (``--hint``): the teacher's penultimate features read from its ONNX graph
beside its logits, learnt by a linear layer on the student's pooled features that is gone
after training."""

import numpy as np
import onnx
import pytest
import torch

from motivnet_edge.compress.distil.hints import Hinted, HintTeacher, embedding_tensor, hint_loss
from motivnet_edge.compress.distil.train import distillation_loss, train
from motivnet_edge.compress.models.teachers import load_teacher
from motivnet_edge.compress.settings import TrainConfig
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.preprocess import CropSpec, Face, FaceImage, cut, normalize_batch
from tests.helpers import TinyNet, cli, output

SPEC = CropSpec(height=32, width=32, margin=0.1)
FACE = Face((10.0, 10.0, 38.0, 38.0))


class MatMulNet(TinyNet):
    """TinyNet whose classifier exports as MatMul and Add (as the real teacher's), not Gemm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) @ self.classifier.weight.T + self.classifier.bias


def tiny_teacher(tmp_path, int8: bool = False):
    """A small CNN exported to ONNX (its classifier a linear layer on 16 pooled features),
    optionally quantised to INT8 operators as the real teacher is (QLinearConv, QLinearMatMul
    behind a QuantizeLinear); the net and the teacher, run in OpenVINO."""
    torch.manual_seed(0)
    net = (MatMulNet() if int8 else TinyNet()).eval()
    path = tmp_path / "teacher.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(path), input_names=["input"],
                      dynamo=False)
    if int8:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                views = np.stack([cut(c.image, c.face, SPEC) for c in faces(16, seed=1)])
                self.items = iter([{"input": x[None]} for x in normalize_batch(views, SPEC)])

            def get_next(self):
                return next(self.items, None)

        quantized = tmp_path / "teacher-int8.onnx"
        quantize_static(str(path), str(quantized), Reader(), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["Conv", "MatMul", "Add"])
        path = quantized
    return net, load_teacher(path, ClassifierSpec(tuple(AFFECTNET7), SPEC, "logits"),
                             engine="openvino")


def faces(n: int, seed: int = 0) -> list[FaceImage]:
    rng = np.random.default_rng(seed)
    return [FaceImage(rng.integers(0, 255, (48, 48, 3), np.uint8), FACE) for _ in range(n)]


@pytest.mark.parametrize("int8", [False, True])
def test_the_teachers_features_are_the_input_of_its_classifier(tmp_path, int8):
    net, teacher = tiny_teacher(tmp_path, int8)
    name = embedding_tensor(teacher.path)
    ops = {node.op_type for node in onnx.load(str(teacher.path)).graph.node}
    assert ("QLinearMatMul" in ops) == int8  # the INT8 file's tensor is behind QuantizeLinear
    hints = HintTeacher(teacher)
    views = np.stack([cut(c.image, c.face, SPEC) for c in faces(6)])
    rows = hints.predict_cut(views)
    assert hints.width == 16 and rows.shape == (6, 7 + 16), name
    assert np.allclose(rows[:, :7], teacher.predict_cut(views), atol=1e-5)  # the same logits
    with torch.no_grad():
        features = net.features(torch.from_numpy(normalize_batch(views, SPEC))).numpy()
    scale = np.abs(features).max()
    assert np.abs(rows[:, 7:] - features).max() < (0.1 if int8 else 1e-4) * scale


def test_a_teacher_not_in_an_onnx_file_is_refused_by_name(tmp_path):
    path = tmp_path / "teacher.pt"
    torch.jit.script(TinyNet().eval()).save(str(path))
    teacher = load_teacher(path, ClassifierSpec(tuple(AFFECTNET7), SPEC, "logits"))
    with pytest.raises(MotivnetError, match=r"--hint needs a teacher in an ONNX file.*teacher\.pt"):
        HintTeacher(teacher)


def test_hinted_gives_hint_columns_only_while_training_and_leaves_the_student_plain():
    student = TinyNet()
    hinted = Hinted(student, 5)
    x = torch.rand(3, 3, 32, 32)
    assert hinted.train()(x).shape == (3, 12)
    assert torch.equal(hinted.eval()(x), student.eval()(x))
    assert not any(k.startswith("hint") for k in student.state_dict())


def test_matching_hint_columns_add_nothing_to_the_loss():
    out, teacher = torch.randn(4, 7), torch.randn(4, 7)
    hints = torch.randn(4, 16)
    labels = torch.full((4,), -1)
    plain = distillation_loss(out, teacher, labels, 4.0, 0.5)
    same = distillation_loss(torch.cat([out, hints], 1), torch.cat([teacher, hints], 1), labels,
                             4.0, 0.5, hint=(2.0, 7))
    assert same.item() == pytest.approx(plain.item(), abs=1e-6)
    zeros = distillation_loss(torch.cat([out, 0 * hints], 1), torch.cat([teacher, hints], 1),
                              labels, 4.0, 0.5, hint=(2.0, 7))
    assert zeros.item() == pytest.approx(plain.item() + 2.0, abs=1e-5)  # zeros score 1 each
    assert hint_loss(hints, hints).item() == 0


def test_training_with_hints_teaches_the_student_the_teachers_features(tmp_path):
    _, teacher = tiny_teacher(tmp_path)
    hints = HintTeacher(teacher)
    crops = faces(48)
    rows = teacher.predict(crops)
    no_labels = np.full(len(crops), -1)
    views = np.stack([cut(c.image, c.face, SPEC) for c in crops])
    target = torch.from_numpy(hints.predict_cut(views)[:, 7:])
    torch.manual_seed(0)
    student = TinyNet()
    hinted = Hinted(student, hints.width)

    def error() -> float:
        hinted.train()  # the hint columns (batch norm on the batch's statistics)
        with torch.no_grad():
            pred = hinted(torch.from_numpy(normalize_batch(views, SPEC)))[:, 7:]
        return hint_loss(pred, target).item()

    before = error()
    cfg = TrainConfig(epochs=20, batch=16, lr=1e-2, augment=0.0, consistent=True, hint=1.0)
    train(hinted, SPEC, crops, rows, no_labels, crops[:4], rows[:4], no_labels[:4], cfg,
          progress=False, teacher=hints)
    assert error() < 0.5 * before
    assert set(student.state_dict()) == set(TinyNet().state_dict())


def test_hint_without_the_teacher_on_every_view_is_refused_with_exit_2(tmp_path):
    res = cli("distil", "--out", str(tmp_path / "out"), "--hint", "1", "--epochs", "1",
              "--no-consistent")
    assert res.returncode == 2, output(res)
    assert "--hint needs --consistent" in output(res)
    assert "Traceback" not in output(res)
    assert not (tmp_path / "out").exists()


def test_resuming_a_hinted_checkpoint_without_the_hint_is_refused_by_name(tmp_path):
    _, teacher = tiny_teacher(tmp_path)
    crops = faces(16)
    rows = teacher.predict(crops)
    no_labels = np.full(len(crops), -1)
    checkpoint = tmp_path / "student.ckpt"
    cfg = TrainConfig(epochs=1, batch=8, augment=0.0, consistent=True, hint=1.0)
    train(Hinted(TinyNet(), 16), SPEC, crops, rows, no_labels, crops[:4], rows[:4],
          no_labels[:4], cfg, checkpoint=checkpoint, progress=False, teacher=HintTeacher(teacher))
    plain = TrainConfig(epochs=2, batch=8, augment=0.0, consistent=True)
    refused = r"student\.ckpt was made with other settings.*--hint: 1\.0 in the checkpoint, 0\.0"
    with pytest.raises(MotivnetError, match=refused):
        train(TinyNet(), SPEC, crops, rows, no_labels, crops[:4], rows[:4], no_labels[:4], plain,
              checkpoint=checkpoint, resume=True, progress=False, teacher=teacher)
