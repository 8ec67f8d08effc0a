"""An artifact that predicts valence and arousal beside the classes (its metadata's ``heads``
name which numbers of an output row are what): the engines return both, the pipeline smooths
them per track with the probabilities, and the daemon's faces messages and ``classify`` carry
them. No pretrained valence/arousal model can be had here, so the file is a small one made
here, as a user's own file would be described."""

import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from motivnet_edge.compress.artifacts import embed_metadata
from motivnet_edge.compress.int8 import onnx_ops
from motivnet_edge.edge.data.synthetic import synth_scene
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.pipeline import Pipeline
from motivnet_edge.targets.circumplex import COORDINATES, coordinates, derive
from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import CropSpec
from tests.helpers import Subscriber, TinyNet, onnx_artifact, synthetic_video
from tests.test_daemon import start_daemon

HEADS = {"classes": list(range(7)), "valence": {"index": 7, "range": [-1.0, 1.0]},
         "arousal": {"index": 8, "range": [-1.0, 1.0]}}


class WithValenceArousal(nn.Module):
    """Seven class logits, then valence and arousal squashed into -1..1, in one row."""

    def __init__(self) -> None:
        super().__init__()
        self.body = TinyNet(classes=9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return torch.cat([out[:, :7], torch.tanh(3 * out[:, 7:])], 1)


def va_artifact(folder, heads=HEADS):
    torch.manual_seed(5)
    spec = CropSpec(height=32, width=32, margin=0.15)
    path = folder / "student-fp32.onnx"
    onnx_ops.export(WithValenceArousal().eval(), spec, path, folder)
    embed_metadata(path, {"labels": list(AFFECTNET7), "crop": spec.to_dict(),
                          "precision": "fp32", "heads": heads})
    return path


def test_the_engine_returns_classes_and_valence_arousal(tmp_path):
    path = va_artifact(tmp_path)
    assert read_metadata(path)["heads"] == HEADS
    batch = np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32)
    with load_engine(path) as engine:
        raw = engine.run_raw(batch)
        logits, values = engine.run_with_values(batch)
        assert raw.shape == (4, 9) and logits.shape == (4, 7)
        np.testing.assert_array_equal(engine.run(batch), raw[:, :7])
        np.testing.assert_array_equal(values["valence"], raw[:, 7])
        np.testing.assert_array_equal(values["arousal"], raw[:, 8])
        assert all(np.abs(v).max() <= 1.0 for v in values.values())
    (tmp_path / "plain").mkdir()
    with load_engine(onnx_artifact(tmp_path / "plain")) as plain:
        assert plain.run_with_values(batch)[1] == {}  # classes only: nothing invented


def test_heads_that_do_not_fit_the_artifact_are_named(tmp_path):
    path = va_artifact(tmp_path, {**HEADS, "arousal": {"index": 3}})
    with pytest.raises(MotivnetError, match="metadata output layout.*used twice"):
        read_metadata(path)


def test_the_pipeline_smooths_valence_arousal_per_track(tmp_path):
    rng = np.random.default_rng(1)
    frame, _ = synth_scene(rng, [3])
    pipe = Pipeline(FaceDetector(), load_engine(va_artifact(tmp_path)))
    first = pipe.process("door", frame, now=0.0).faces
    assert first and {"valence", "arousal"} <= set(first[0])
    again = pipe.process("door", frame, now=0.1).faces  # the same face: the same track
    assert again[0]["track"] == first[0]["track"]
    assert abs(again[0]["valence"] - first[0]["valence"]) < 1e-3  # a steady face, a steady value
    assert -1.0 <= again[0]["arousal"] <= 1.0


@pytest.mark.slow
def test_the_daemon_publishes_valence_arousal_per_face(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 10)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "device": "testbox", "model": {"artifact": str(va_artifact(tmp_path)), "target": "cpu"},
        "cameras": [{"name": "door", "source": str(video)}],
        "mqtt": {"host": "127.0.0.1", "port": broker.port}}))
    sub = Subscriber(broker.port)
    proc = start_daemon(config, "--max-frames", "8")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    faces = [json.loads(p) for p in sub.wait_for("/door/faces", 3)]
    stats = [json.loads(p) for p in sub.wait_for("/stats", 1)]
    sub.close()
    assert -1.0 <= stats[-1]["valence"]["door"] <= 1.0  # the top face's, for Home Assistant
    face = faces[-1]["faces"][0]
    assert -1.0 <= face["valence"] <= 1.0 and -1.0 <= face["arousal"] <= 1.0
    assert face["va_source"] == "model"
    assert abs(sum(face["probs"].values()) - 1) < 0.01  # the classes are still probabilities


def test_the_pipeline_derives_valence_arousal_only_when_asked(tmp_path):
    """A classes-only artifact: nothing by default; with ``derive_values`` the probability-
    weighted circumplex places, marked derived; a model with its own keeps them."""
    rng = np.random.default_rng(2)
    frame, _ = synth_scene(rng, [1])
    (tmp_path / "plain-model").mkdir()
    plain = onnx_artifact(tmp_path / "plain-model")
    assert "valence" not in Pipeline(FaceDetector(), load_engine(plain)).process(
        "door", frame).faces[0]
    pipe = Pipeline(FaceDetector(), load_engine(plain), derive_values=True)
    face = pipe.process("door", frame).faces[0]
    assert pipe.values == ("valence", "arousal") and face["va_source"] == "derived"
    expected = sum(p * np.array(COORDINATES[k]) for k, p in face["probs"].items())
    assert (face["valence"], face["arousal"]) == pytest.approx(tuple(expected), abs=2e-3)
    own = Pipeline(FaceDetector(), load_engine(va_artifact(tmp_path)), derive_values=True)
    assert own.process("door", frame).faces[0]["va_source"] == "model"


def test_derived_coordinates_name_a_class_they_do_not_know():
    assert derive(np.eye(7)[[1]], coordinates(AFFECTNET7))["valence"][0] == \
        pytest.approx(COORDINATES["Happiness"][0])
    with pytest.raises(MotivnetError, match="no published circumplex coordinates for Contempt"):
        coordinates([*AFFECTNET7, "Contempt"])


@pytest.mark.slow
def test_the_daemon_publishes_derived_valence_arousal_marked_as_such(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 10)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "device": "testbox", "model": {"artifact": str(onnx_artifact(tmp_path)),
                                       "target": "cpu"},
        "cameras": [{"name": "door", "source": str(video)}],
        "pipeline": {"derive_valence_arousal": True},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "home_assistant": True}}))
    sub, discovery = Subscriber(broker.port), Subscriber(broker.port, "homeassistant")
    proc = start_daemon(config, "--max-frames", "8")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    face = json.loads(sub.wait_for("/door/faces", 3)[-1])["faces"][0]
    sensor = json.loads(discovery.wait_for("door_valence/config", 1)[0])
    sub.close()
    discovery.close()
    assert face["va_source"] == "derived" and -1.0 <= face["valence"] <= 1.0
    assert sensor["name"] == "door valence (derived)"


def test_classify_prints_valence_arousal_when_the_model_gives_them():
    from motivnet_edge.edge.classify import face_line

    face = {"box": [1, 2, 3, 4], "label": "Happiness", "score": 0.9,
            "probs": {"Happiness": 0.9, "Neutral": 0.1}}
    assert "valence" not in face_line("a.jpg", 1, 1, face)
    line = face_line("a.jpg", 1, 1, {**face, "valence": 0.5, "arousal": -0.25})
    assert line.endswith("\tvalence +0.500\tarousal -0.250")
