"""Face detection: Haar (default) and YuNet find generated faces and a real photograph."""

import cv2
import numpy as np
import pytest
from matplotlib import cbook

from motivnet_edge.edge.data.synthetic import synth_faces, synth_scene
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.errors import MotivnetError


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def grace_hopper():
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        data = np.frombuffer(f.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def found_rate(detector, faces):
    hits = 0
    for f in faces:
        found = detector.detect(f.image)
        hits += bool(found) and iou(found[0].box, f.box) > 0.3
    return hits / len(faces)


@pytest.fixture(scope="module")
def generated():
    return synth_faces(42, seed=3)


def test_shipped_yunet_is_the_default_and_gives_landmarks(generated):
    det = FaceDetector()
    assert det.kind == "yunet" and det.gives_landmarks
    assert found_rate(det, generated) >= 0.9
    assert all(f.landmarks.shape == (5, 2) for f in det.detect(generated[0].image))


def test_haar_is_the_fallback_and_finds_generated_faces(generated):
    det = FaceDetector(kind="haar")
    assert det.kind == "haar" and not det.gives_landmarks
    assert found_rate(det, generated) >= 0.8


def test_yunet_finds_generated_faces_with_landmarks(yunet_path, generated):
    det = FaceDetector(yunet_path)
    assert det.kind == "yunet"
    assert found_rate(det, generated) >= 0.9
    face = det.detect(generated[0].image)[0]
    assert face.landmarks.shape == (5, 2)
    x, y, w, h = face.box
    eyes = face.landmarks[:2]
    assert np.all((eyes[:, 0] > x) & (eyes[:, 0] < x + w) & (eyes[:, 1] > y) & (eyes[:, 1] < y + h))


@pytest.mark.parametrize("kind", ["haar", "yunet"])
def test_real_photo_has_one_face(kind):
    det = FaceDetector(kind=kind)
    img = grace_hopper()
    faces = det.detect(img)
    assert len(faces) >= 1
    x, y, w, h = faces[0].box
    # her face is in the upper middle of the 512x600 portrait
    assert 150 < x + w / 2 < 350 and 150 < y + h / 2 < 330 and w > 100


def test_scene_faces_are_found_by_yunet(yunet_path):
    frame, boxes = synth_scene(np.random.default_rng(5), [1, 3, 6])
    found = FaceDetector(yunet_path).detect(frame)
    assert all(any(iou(f.box, b) > 0.3 for f in found) for b in boxes)


def test_blank_frame_has_no_face():
    assert FaceDetector().detect(np.full((240, 320, 3), 90, np.uint8)) == []


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(MotivnetError, match="nope.onnx"):
        FaceDetector(tmp_path / "nope.onnx")
