"""Five-point alignment: the landmarks land on the template, training (a stored face region)
and the device (the whole frame) make the same input, and a teacher whose spec says aligned
input and another class order labels faces correctly."""

import numpy as np
import pytest
import torch
import yaml

from motivnet_edge.compress.distil.data import face_region
from motivnet_edge.targets.classifier_spec import load_spec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, FER2013
from motivnet_edge.targets.preprocess import (
    FIVE_POINT_112,
    CropSpec,
    Face,
    FaceImage,
    make_input,
)

ALIGNED = CropSpec(height=112, width=112, region="aligned", color="bgr", mean=(0,), std=(1,),
                   layout="nhwc")


def face_in_frame(angle=17.0, scale=2.3, shift=(180.0, 90.0), size=(480, 640)):
    """A frame with a coloured dot at each of five landmarks: the template turned, scaled and
    moved (a real similarity), so a correct alignment maps them back exactly."""
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    marks = np.asarray(FIVE_POINT_112) @ rot.T + shift
    frame = np.full((*size, 3), 40, np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    import cv2

    for (x, y), c in zip(marks, colours, strict=True):
        cv2.circle(frame, (int(round(x)), int(round(y))), 6, c, -1)
    # the box a detector gives: forehead to chin, about the template's 18..94 x 24..112
    corners = np.array([[18, 24], [94, 24], [18, 112], [94, 112]]) @ rot.T + shift
    (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
    return frame, Face((x0, y0, x1 - x0, y1 - y0), 0.9, marks.astype(np.float32)), colours


def brightest(img: np.ndarray, colour) -> tuple[float, float]:
    """Centre of the pixels of ``colour`` in ``img`` (HWC, BGR)."""
    mask = np.all(np.abs(img.astype(int) - colour) < 60, axis=2)
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def test_the_five_landmarks_land_on_the_template_within_a_pixel():
    frame, face, colours = face_in_frame()
    out = make_input(frame, face, ALIGNED)
    for (tx, ty), c in zip(FIVE_POINT_112, colours, strict=True):
        x, y = brightest(out, c)
        assert abs(x - tx) < 1.0 and abs(y - ty) < 1.0, (c, (x, y), (tx, ty))


def test_training_and_the_device_make_the_same_aligned_input():
    frame, face, _ = face_in_frame()
    device = make_input(frame, face, ALIGNED)
    stored = face_region(frame, face)  # what distillation keeps
    training = stored.input(ALIGNED)
    assert np.abs(training.astype(int) - device.astype(int)).mean() < 1.0
    # and a mirrored face is aligned like the mirrored frame
    mirrored = FaceImage(frame, face).mirrored()
    assert np.abs(mirrored.input(ALIGNED).astype(int)
                  - make_input(frame[:, ::-1].copy(), face.mirrored(frame.shape[1]),
                               ALIGNED).astype(int)).max() == 0


def test_an_aligned_spec_refuses_a_face_without_landmarks():
    frame, face, _ = face_in_frame()
    with pytest.raises(MotivnetError, match="aligned on five landmarks"):
        make_input(frame, Face(face.box), ALIGNED)


class EyeReader(torch.nn.Module):
    """Logits read off the aligned RGB input: the blue around the template's right eye becomes
    the logit of FER2013's 'happy' (index 3); the rest is 0."""

    def forward(self, x):
        x0, y0 = (int(round(v)) for v in FIVE_POINT_112[0])
        eye = x[:, 2, y0 - 2:y0 + 3, x0 - 2:x0 + 3].mean(dim=(1, 2))
        zeros = torch.zeros_like(eye)
        return torch.stack([zeros, zeros, zeros, eye, zeros, zeros, zeros], 1)


def test_a_teacher_with_aligned_input_and_another_class_order_labels_faces(tmp_path):
    from motivnet_edge.compress.models.teachers import load_teacher

    path = tmp_path / "eye.onnx"
    torch.onnx.export(EyeReader(), (torch.zeros(1, 3, 112, 112),), str(path),
                      input_names=["data"], dynamic_axes={"data": {0: "n"}}, dynamo=False)
    spec_file = tmp_path / "eye.yaml"
    spec_file.write_text(yaml.safe_dump({
        "labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
        "outputs": "logits", "crop": {"height": 112, "width": 112, "region": "aligned",
                                      "color": "rgb", "mean": [0], "std": [1]}}))
    spec = load_spec(spec_file)
    assert list(spec.labels) == list(FER2013)
    teacher = load_teacher(path, spec)
    frame, face, _ = face_in_frame()  # the right eye is blue (255, 0, 0 in BGR)
    logits = teacher.predict([face_region(frame, face)])
    assert AFFECTNET7[int(logits[0].argmax())] == "Happiness"
    assert logits[0][AFFECTNET7.index("Happiness")] > 150  # the eye's blue, read aligned
