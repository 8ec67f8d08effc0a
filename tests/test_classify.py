"""``motivnet-edge classify``: the shipped model on photos, folders and videos, without torch;
clear errors for files it cannot read."""

import json
import subprocess
import sys

import cv2
import numpy as np

from motivnet_edge.benchmarks.no_torch import BLOCK_TORCH
from motivnet_edge.edge.data.synthetic import synth_scene
from motivnet_edge.targets.labels import AFFECTNET7
from tests.helpers import synthetic_video


def classify(*args: str) -> subprocess.CompletedProcess:
    """The command as a device runs it: torch cannot be imported."""
    code = BLOCK_TORCH + ("from motivnet_edge.cli import main\n"
                          f"sys.exit(main(['classify', *{list(args)!r}]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def face_photo(path, seed=0, faces=1):
    rng = np.random.default_rng(seed)
    frame, _ = synth_scene(rng, [int(x) for x in rng.integers(0, 7, faces)])
    cv2.imwrite(str(path), frame)
    return path


def test_a_photo_gets_one_line_per_face_with_a_label(tmp_path):
    photo = face_photo(tmp_path / "scene.jpg", faces=2)
    res = classify(str(photo))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "\tface " in ln]
    assert len(lines) == 2, res.stdout
    for line in lines:
        name, face, box, label, probs = line.split("\t")
        assert name == str(photo) and face.startswith("face ")
        assert label.split()[0] in AFFECTNET7
        assert 0.0 < float(label.split()[1]) <= 1.0
        assert len(probs.split()) == 7
    assert "torch" not in res.stderr


def test_json_output_and_annotated_pictures(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        face_photo(photos / f"p{i}.png", seed=i)
    annotated = tmp_path / "annotated"
    res = classify(str(photos), "--json", "--annotate", str(annotated))
    assert res.returncode == 0, res.stderr
    objects = [json.loads(line) for line in res.stdout.splitlines()]
    assert {o["source"] for o in objects} == {str(photos / "p0.png"), str(photos / "p1.png")}
    for o in objects:
        assert o["label"] in AFFECTNET7 and len(o["box"]) == 4
        assert abs(sum(o["probs"].values()) - 1.0) < 0.01
        assert o["label"] == max(o["probs"], key=o["probs"].get)
    written = sorted(p.name for p in annotated.iterdir())
    assert written == ["p0.jpg", "p1.jpg"]
    original = cv2.imread(str(photos / "p0.png"))
    drawn = cv2.imread(str(annotated / "p0.jpg"))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original).max() > 100, "boxes were drawn"


def test_a_video_is_classified_frame_by_frame(tmp_path):
    video = synthetic_video(tmp_path / "clip.avi", frames=6)
    res = classify(str(video), "--every", "2", "--json")
    assert res.returncode == 0, res.stderr
    frames = {json.loads(line)["frame"] for line in res.stdout.splitlines()}
    assert frames == {0, 2, 4}


def test_an_unreadable_file_is_named_and_the_others_still_run(tmp_path):
    good = face_photo(tmp_path / "good.jpg")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    res = classify(str(good), str(bad))
    assert res.returncode == 2
    assert str(bad) in res.stderr and "Traceback" not in res.stderr
    assert str(good) in res.stdout


def test_a_missing_path_is_named_before_anything_loads(tmp_path):
    res = classify(str(tmp_path / "nope.jpg"))
    assert res.returncode == 2
    assert "nope.jpg does not exist" in res.stderr and "Traceback" not in res.stderr
