"""Teachers with several outputs in one row, as data: class logits at given indices, valence and
arousal at others with their range (HSEmotion's multi-task layout is a shipped spec), and input
given as grey replicated into three channels."""

import numpy as np
import pytest
import torch
import yaml

from motivnet_edge.compress.models.teachers import load_teacher
from motivnet_edge.targets.classifier_spec import ClassifierSpec, load_spec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, AFFECTNET8
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_input
from tests.helpers import FixedLogits

HSEMOTION = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness",
             "Surprise")


def test_the_shipped_hsemotion_spec_reads_classes_and_valence_arousal():
    spec = load_spec("hsemotion-enet-b0-8-va-mtl")
    assert spec.labels == HSEMOTION and spec.classes == tuple(range(8))
    assert {k: (h.index, h.low, h.high) for k, h in spec.continuous.items()} == {
        "valence": (8, -1.0, 1.0), "arousal": (9, -1.0, 1.0)}
    assert (spec.crop.height, spec.crop.color, spec.crop.region) == (224, "rgb", "box")
    row = np.array([[0, 0, 0, 0, 5.0, 0, 0, 0, 0.7, -0.2]], np.float32)
    assert spec.logits(row).shape == (1, 8) and HSEMOTION[int(spec.logits(row).argmax())] == \
        "Happiness"
    values = spec.values(row)
    assert values["valence"][0] == pytest.approx(0.7) and values["arousal"][0] == \
        pytest.approx(-0.2)
    assert ClassifierSpec.from_dict(spec.to_dict()) == spec  # round trip, heads kept


@pytest.mark.parametrize("heads, named", [
    ({"classes": [0, 1]}, "2 indices for 8 labels"),
    ({"classes": list(range(8)), "valence": {"index": 3}}, "used twice"),
    ({"valence": {"index": -1}}, "heads.valence"),
    ({"valence": {"index": 9, "range": [1, -1]}}, "heads.valence"),
    ({"arousal": 9}, "heads.arousal"),
    ({"dominance": {"index": 9}}, "'heads'"),
    ([1, 2], "'heads'"),
], ids=["classes-count", "index-twice", "negative", "range-reversed", "not-a-mapping",
        "unknown-head", "a-list"])
def test_bad_heads_are_named(heads, named):
    with pytest.raises(MotivnetError, match=named):
        ClassifierSpec.from_dict({"labels": list(HSEMOTION), "heads": heads})


def test_output_too_narrow_for_its_spec_is_named():
    with pytest.raises(MotivnetError, match="reads 10 numbers a row"):
        load_spec("hsemotion-enet-b0-8-va-mtl").logits(np.zeros((2, 8), np.float32))


def test_a_ten_output_onnx_teacher_is_distilled_on_its_classes_with_no_code(tmp_path):
    """The HSEmotion layout as an ONNX file: the teacher gives the seven classes MotivNet
    knows (Contempt dropped by the label map) in MotivNet's order, then its valence and arousal
    (the rows the cache keeps and the student learns)."""
    logits = [float(i) for i in range(8)] + [0.5, -0.5]  # class logit = HSEmotion index
    path = tmp_path / "enet_b0_8_va_mtl.onnx"
    torch.onnx.export(FixedLogits(logits).eval(), (torch.zeros(1, 3, 224, 224),), str(path),
                      input_names=["input"], dynamic_axes={"input": {0: "n"}}, dynamo=False)
    teacher = load_teacher(path, load_spec("hsemotion-enet-b0-8-va-mtl"))
    out = teacher.predict([FaceImage(np.zeros((240, 240, 3), np.uint8))])
    assert out.shape == (1, 9)  # the classes in MotivNet's order, then valence and arousal
    assert [HSEMOTION[int(v)] for v in out[0, :7]] == list(AFFECTNET7)
    assert out[0, 7:].tolist() == pytest.approx([0.5, -0.5])
    assert teacher.layout.ranges == {"valence": (-1.0, 1.0), "arousal": (-1.0, 1.0)}
    assert "Contempt" in AFFECTNET8 and "Contempt" not in teacher.classes


def test_gray3_is_grey_in_three_channels():
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 2] = 200  # red in BGR
    spec = CropSpec(height=32, width=32, color="gray3", mean=(0.0,), std=(1.0,))
    x = make_input(frame, (8, 8, 48, 48), spec)
    assert x.shape == (3, 32, 32) and spec.channels == 3
    assert np.array_equal(x[0], x[1]) and np.array_equal(x[1], x[2])
    assert 55 < x[0, 16, 16] < 65  # 0.299 x 200: BGR to grey, not one colour copied
    assert CropSpec.from_dict(yaml.safe_load("{color: gray3}")).color == "gray3"


def test_values_are_held_to_their_declared_ranges():
    from motivnet_edge.targets.classifier_spec import OutputLayout

    layout = OutputLayout.appended(2, {"valence": (-1.0, 1.0), "arousal": (0.0, 1.0)})
    rows = np.array([[0.1, 0.2, -1.0019, 1.2], [0.3, 0.4, 0.5, -0.01]], np.float32)
    values = layout.values(rows)
    assert values["valence"].tolist() == pytest.approx([-1.0, 0.5])
    assert values["arousal"].tolist() == pytest.approx([1.0, 0.0])
