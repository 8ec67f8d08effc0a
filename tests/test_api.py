"""The Python API: pictures in any of their forms and streams, with torch blocked, and the
examples of docs/api.md run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from motivnet_edge.benchmarks.no_torch import BLOCK_TORCH
from motivnet_edge.edge.data.synthetic import synth_scene
from tests.helpers import synthetic_video

ROOT = Path(__file__).resolve().parents[1]


def scene(path: Path) -> Path:
    frame, _ = synth_scene(np.random.default_rng(5), [1, 3])
    cv2.imwrite(str(path), frame)
    return path


def run_blocked(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_pictures_and_a_stream_with_torch_blocked(tmp_path):
    """In an interpreter where torch cannot be imported: the faces of a picture from its path
    are those of its array (BGR), of its RGB array and of its PIL image; a stream of a video
    gives every frame with tracked faces."""
    scene(tmp_path / "photo.png")
    synthetic_video(tmp_path / "clip.avi", 6)
    res = run_blocked("""
import cv2, numpy as np
from PIL import Image
from motivnet_edge import EmotionRecognizer, FaceEmotion
r = EmotionRecognizer()
by_path = r("photo.png")
bgr = cv2.imread("photo.png")
assert by_path and all(isinstance(f, FaceEmotion) for f in by_path)
for other in (r(bgr), r(bgr[..., ::-1].copy(), color="rgb"),
              r(Image.fromarray(bgr[..., ::-1]))):
    assert [(f.box, f.label, f.score) for f in other] == \\
        [(f.box, f.label, f.score) for f in by_path]
face = by_path[0]
assert face.landmarks.shape == (5, 2) and face.track is None
assert abs(sum(face.probabilities.values()) - 1) < 0.01 and face.label in r.labels
frames = list(r.stream("clip.avi"))
assert [f.index for f in frames] == list(range(1, 7)), [f.index for f in frames]
assert all(f.faces and f.faces[0].track is not None for f in frames)
tracks = [sorted(face.track for face in f.faces) for f in frames]
assert all(t == tracks[0] for t in tracks), tracks  # the same faces, the same tracks
print("torch" in sys.modules, len(by_path))
""", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["False", "2"], res.stdout


@pytest.mark.parametrize("bad, message", [
    ("'nowhere.jpg'", "picture nowhere.jpg cannot be read"),
    ("np.zeros((4, 4, 3), np.float32)", "must be uint8"),
    ("[1, 2, 3]", "not list"),
])
def test_a_bad_picture_is_a_clear_error(tmp_path, bad, message):
    res = run_blocked(f"""
import numpy as np
from motivnet_edge import EmotionRecognizer, MotivnetError
try:
    EmotionRecognizer()({bad})
except MotivnetError as exc:
    print(exc)
""", tmp_path)
    assert res.returncode == 0 and message in res.stdout, res.stdout + res.stderr[-2000:]


def test_a_missing_stream_and_a_bad_model_are_named(tmp_path):
    from motivnet_edge import EmotionRecognizer, MotivnetError

    with pytest.raises(MotivnetError, match="missing.avi: no such file"):
        next(EmotionRecognizer().stream(tmp_path / "missing.avi"))
    with pytest.raises(MotivnetError, match="nothing.onnx"):
        EmotionRecognizer(model=tmp_path / "nothing.onnx")


def test_the_examples_of_docs_api_run_as_written(tmp_path):
    scene(tmp_path / "photo.jpg")
    synthetic_video(tmp_path / "clip.avi", 4)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) >= 4
    for block in blocks:
        res = run_blocked(block, tmp_path)
        assert res.returncode == 0, block + res.stderr[-3000:]
        assert res.stdout.strip(), block  # each example prints what it found
