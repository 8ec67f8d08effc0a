"""The per-frame pipeline without MQTT: faces in, tracked probabilities out; an artifact aligned
on landmarks refuses a detector that gives none, unless the box-crop fallback is asked for."""

import numpy as np
import pytest

from motivnet_edge.edge.data.synthetic import synth_scene
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.pipeline import Pipeline
from motivnet_edge.targets.engine import load_engine
from motivnet_edge.targets.errors import MotivnetError
from tests.helpers import onnx_artifact


def frames(n: int = 3):
    rng = np.random.default_rng(5)
    return [synth_scene(rng, [1, 4])[0] for _ in range(n)]


def test_pipeline_gives_tracked_faces_with_probabilities(tmp_path):
    engine = load_engine(onnx_artifact(tmp_path, region="aligned"))
    pipe = Pipeline(FaceDetector(), engine)  # the shipped YuNet gives landmarks
    results = [pipe.process("cam", f) for f in frames()]
    assert all(r.faces for r in results)
    face = results[-1].faces[0]
    assert abs(sum(face["probs"].values()) - 1) < 0.01 and len(face["box"]) == 4
    assert results[0].faces[0]["track"] == face["track"]  # the same face, the same track
    assert {"detect", "preprocess", "infer", "total"} <= set(results[-1].timings)
    assert pipe.box_crop_faces == 0


def test_aligned_artifact_with_a_landmarkless_detector_is_refused_unless_asked(tmp_path):
    engine = load_engine(onnx_artifact(tmp_path, region="aligned"))
    with pytest.raises(MotivnetError, match=r"aligned on five landmarks.*haar.*"
                                            r"box_crop_fallback"):
        Pipeline(FaceDetector(kind="haar"), engine)
    pipe = Pipeline(FaceDetector(kind="haar"), engine, box_crop_fallback=True)
    results = [pipe.process("cam", f) for f in frames()]
    found = sum(len(r.faces) for r in results)
    assert found >= 3 and pipe.box_crop_faces == found  # every face cut as a box, counted


def test_the_daemon_refuses_it_at_start_with_a_clear_message(tmp_path):
    import subprocess
    import sys

    import yaml

    from tests.helpers import synthetic_video

    artifact = onnx_artifact(tmp_path, region="aligned")
    video = synthetic_video(tmp_path / "v.avi", 2)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"model": {"artifact": str(artifact), "target": "cpu"},
                                      "detector": {"kind": "haar"},
                                      "cameras": [{"name": "door", "source": str(video)}]}))
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "run", "--config",
                          str(config)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "box_crop_fallback" in res.stderr
    assert "Traceback" not in res.stderr


def test_landmarks_that_cannot_be_aligned_fall_back_to_a_box_crop(tmp_path):
    """A detector's landmarks all on one point (nothing to align): the face is cut as a square
    around its box and counted, and the frame goes on instead of ending the daemon."""
    from motivnet_edge.targets.preprocess import Face

    pipe = Pipeline(FaceDetector(), load_engine(onnx_artifact(tmp_path, region="aligned")))
    frame = np.full((120, 160, 3), 90, np.uint8)
    good = Face((40, 30, 60, 60), 0.9, np.array([[55, 50], [85, 50], [70, 62], [58, 75],
                                                  [82, 75]], np.float32))
    assert pipe._input(frame, good).shape == pipe.engine.crop.input_shape[1:]
    assert pipe.box_crop_faces == 0
    flat = Face((40, 30, 60, 60), 0.9, np.full((5, 2), 60.0, np.float32))
    assert pipe._input(frame, flat).shape == pipe.engine.crop.input_shape[1:]
    assert pipe.box_crop_faces == 1


def test_with_detect_every_the_faces_found_last_are_classified_between_detections(tmp_path):
    """detect_every 3 on a scene that moves 12 px a frame: frames 1 and 2 keep frame 0's
    boxes (detection time 0) while their crops come from the moving frame; frame 3 detects
    again, where the faces are now."""

    frame, _ = synth_scene(np.random.default_rng(2), [1, 3])
    shots = [np.roll(frame, 12 * i, axis=1) for i in range(4)]
    engine = load_engine(onnx_artifact(tmp_path, region="aligned"))
    every = Pipeline(FaceDetector(), engine, detect_every=3)
    each = Pipeline(FaceDetector(), engine)
    got = [every.process("cam", f, now=i * 0.1) for i, f in enumerate(shots)]
    ref = [each.process("cam", f, now=i * 0.1) for i, f in enumerate(shots)]
    boxes = [[f["box"] for f in r.faces] for r in got]
    assert boxes[0] and boxes[1] == boxes[2] == boxes[0]  # no movement known yet
    assert boxes[3] == [f["box"] for f in ref[3].faces] != boxes[0]
    assert got[1].timings["detect"] < 0.5 * got[0].timings["detect"]
    assert [len(r.faces) for r in got] == [len(r.faces) for r in ref]


def test_carried_faces_move_on_as_they_moved_between_the_last_two_detections(tmp_path):
    """detect_every 3 on a scene moving 12 px a frame: once two detections are known (frames 0
    and 3), the faces carried to frames 4 and 5 are 12 and 24 px further on, where detection on
    every frame finds them, not where frame 3 left them."""
    frame, _ = synth_scene(np.random.default_rng(2), [1, 3])
    shots = [np.roll(frame, 12 * i, axis=1) for i in range(6)]
    engine = load_engine(onnx_artifact(tmp_path, region="aligned"))
    every = Pipeline(FaceDetector(), engine, detect_every=3)
    each = Pipeline(FaceDetector(), engine)
    got = [[f["box"] for f in every.process("cam", f, now=i * 0.1).faces]
           for i, f in enumerate(shots)]
    ref = [[f["box"] for f in each.process("cam", f, now=i * 0.1).faces]
           for i, f in enumerate(shots)]
    assert got[3] == ref[3] and len(got[5]) == len(ref[5]) > 0
    for k in (4, 5):
        moved = [a[0] - b[0] for a, b in zip(got[k], got[3], strict=True)]
        assert all(abs(m - 12 * (k - 3)) <= 3 for m in moved), moved
        # nearer where every-frame detection finds them than frame 3's boxes left in place
        off = [abs(a[0] - b[0]) for a, b in zip(got[k], ref[k], strict=True)]
        stayed = [abs(a[0] - b[0]) for a, b in zip(got[3], ref[k], strict=True)]
        assert all(o <= 6 and o < s for o, s in zip(off, stayed, strict=True)), (off, stayed)


def test_a_cut_between_detections_is_detected_at_once(tmp_path):
    """detect_every 5 and a cut to another scene at frame 2: with a change threshold, frame 2
    is detected at once (the new scene's faces, one change detection counted); without one,
    frame 2 classifies the old scene's boxes."""
    rng = np.random.default_rng(4)
    first, _ = synth_scene(rng, [1, 3])
    second, _ = synth_scene(rng, [2])
    shots = [first, np.roll(first, 2, axis=1), second, np.roll(second, 2, axis=1)]
    engine = load_engine(onnx_artifact(tmp_path, region="aligned"))
    want = [f["box"] for f in Pipeline(FaceDetector(), engine).process("c", second).faces]
    for threshold, detected in ((6.0, True), (0.0, False)):
        pipe = Pipeline(FaceDetector(), engine, detect_every=5, change_threshold=threshold)
        got = [[f["box"] for f in pipe.process("c", s, now=i * 0.1).faces]
               for i, s in enumerate(shots)]
        assert got[1] == got[0]  # a 2 px drift is no cut: frame 0's faces carried
        assert (got[2] == want) is detected and pipe.change_detections == int(detected)
