"""YuNet on the classifier's engines finds the faces OpenCV's YuNet finds: the same boxes,
landmarks and scores on frames of drawn faces at several sizes (padding included), through
the detector and through the daemon's config; the shipped any-size file is the one the
generator makes from the published file."""

import numpy as np
import pytest

from motivnet_edge.compress.detector_files import any_size
from motivnet_edge.edge.config import load_config
from motivnet_edge.edge.data.synthetic import synth_scene
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.edge.yunet import (
    DETECTOR_FOLDER,
    ONNX_ROLE,
    SHIPPED_YUNET,
    TFLITE_ROLE,
    agreement,
    decode,
    folder_files,
    open_yunet,
    passes,
    yunet_engine,
)
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file

ENGINES = ("onnxruntime", "openvino", "litert")


def frames(n: int = 12, seed: int = 4) -> list[np.ndarray]:
    """Frames of 1-3 drawn faces at sizes a camera gives once shrunk, odd ones included."""
    rng = np.random.default_rng(seed)
    sizes = [(320, 240), (320, 180), (301, 227), (240, 320)]
    out = []
    for i in range(n):
        frame, _ = synth_scene(rng, [int(k) for k in rng.integers(0, 7, 1 + i % 3)])
        w, h = sizes[i % len(sizes)]
        import cv2

        out.append(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
    return out


ANY_SIZE_YUNET = folder_files(DETECTOR_FOLDER, ONNX_ROLE)[None]
TFLITE_YUNET = folder_files(DETECTOR_FOLDER, TFLITE_ROLE)


def test_the_shipped_any_size_file_is_what_the_generator_makes(tmp_path):
    made = any_size(SHIPPED_YUNET, tmp_path / "yunet.onnx")
    assert sha256_file(made) == sha256_file(ANY_SIZE_YUNET)


def test_the_shipped_detector_folder_lists_every_file_passed_in_every_engine():
    """Its manifest: the any-size file gated in ONNX Runtime and OpenVINO, a TFLite file per
    padded frame size gated in LiteRT, all passed, on real photos' frames."""
    from motivnet_edge.targets.manifest import Manifest

    manifest = Manifest.read(DETECTOR_FOLDER)
    assert sorted(TFLITE_YUNET) == [(256, 320), (320, 192), (320, 256), (320, 320)]
    engines = {e["path"]: set(e["gate"]) for e in manifest.files}
    assert engines[ANY_SIZE_YUNET.name] == {"onnxruntime", "openvino"}
    assert all(engines[p.name] == {"litert"} for p in TFLITE_YUNET.values())
    assert all(g["passed"] and g["matched"] >= 0.99 for e in manifest.files
               for g in e["gate"].values())
    assert manifest.info["source_sha256"] == sha256_file(SHIPPED_YUNET)
    assert "photos" in manifest.info["frames_from"]  # real faces, not drawn ones


@pytest.mark.parametrize("engine", ENGINES)
def test_each_engine_finds_what_opencv_finds(engine):
    shots = frames()
    reference = open_yunet("opencv", None, 0.6, 0.3, 50)
    runner = open_yunet(engine, None, 0.6, 0.3, 50, threads=1)
    ref = [reference.detect(f) for f in shots]
    got = [runner.detect(f) for f in shots]
    assert sum(len(r) for r in ref) >= len(shots), "the drawn faces are found at all"
    scores = agreement(ref, got)
    assert passes(scores) and scores["same_count"] == 1.0, scores
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, atol=0.02)  # the same numbers, to float rounding


def test_the_gate_fails_a_detector_that_moves_or_invents_faces():
    shots = frames(6)
    ref = [open_yunet("opencv", None, 0.6, 0.3, 50).detect(f) for f in shots]
    moved = [r + np.r_[np.zeros(4), np.full(10, 3.0), 0.0] for r in ref]  # landmarks 3 px off
    assert not passes(agreement(ref, moved))
    invented = [np.concatenate([r, r[:1] + np.r_[200.0, 0, 0, 0, np.zeros(11)]]) for r in ref]
    assert agreement(ref, invented)["extra"] > 0.01
    assert not passes(agreement(ref, [r[:0] for r in ref]))  # finding nothing


def test_decode_refuses_outputs_of_another_size():
    outs = {f"{k}_{s}": np.zeros((1, 4, n)) for s in (8, 16, 32)
            for k, n in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))}
    with pytest.raises(MotivnetError, match="cells at stride 8"):
        decode(outs, 320, 320, 0.6, 0.3, 50)


def test_auto_runs_yunet_in_the_classifiers_engine_where_it_can():
    assert yunet_engine("auto", "onnxruntime") == "onnxruntime"
    assert yunet_engine("auto", "openvino") == "openvino"
    assert yunet_engine("auto", "litert") == "litert"
    assert yunet_engine("auto", "tensorrt") == "opencv"  # no YuNet runner there
    assert FaceDetector(prefer="onnxruntime").engine == "onnxruntime"
    # a YuNet file of the user's own may fix its input size: auto keeps it in OpenCV
    assert FaceDetector(SHIPPED_YUNET, prefer="onnxruntime").engine == "opencv"
    with pytest.raises(MotivnetError, match="takes only 640x640"):
        FaceDetector(SHIPPED_YUNET, engine="onnxruntime")
    with pytest.raises(MotivnetError, match="detector engine 'tpu'"):
        FaceDetector(engine="tpu")


@pytest.mark.parametrize("engine", ["auto", "opencv", *ENGINES])
def test_the_detector_gives_the_same_faces_in_every_engine(engine):
    reference = FaceDetector(engine="opencv")
    detector = FaceDetector(engine=engine, prefer="onnxruntime")
    for frame in frames(6, seed=9):
        ref, got = reference.detect(frame), detector.detect(frame)
        assert [f.box for f in got] == [f.box for f in ref]
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_allclose(b.landmarks, a.landmarks, atol=0.02)


def test_the_config_names_the_detector_engine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("device: t\ncameras: [{name: c, source: x.mp4}]\n"
                    "detector: {engine: tpu}\n")
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(MotivnetError, match="detector.engine: 'tpu'"):
        load_config(path, env={})


@pytest.mark.slow
def test_the_daemon_publishes_the_same_faces_whichever_engine_runs_yunet(tmp_path, broker):
    """The real daemon on one video, with YuNet in each engine: the faces it publishes (their
    number, boxes and labels, frame by frame) are OpenCV's; its stats give CPU time per frame
    and the share of it spent detecting."""
    import json

    from tests.helpers import Subscriber, synthetic_video
    from tests.test_daemon import start_daemon, write_config

    video = synthetic_video(tmp_path / "v.avi", 10, seed=3)
    published = {}
    for engine in ("opencv", *ENGINES):
        sub = Subscriber(broker.port, prefix=f"yn-{engine}")
        folder = tmp_path / engine
        folder.mkdir()
        config = write_config(folder, broker.port, video, detector={"engine": engine},
                              mqtt={"prefix": f"yn-{engine}"})
        proc = start_daemon(config, "--max-frames", "8")
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        assert f"face detector: yunet in {engine}" in err
        faces = [json.loads(p) for p in sub.wait_for("/door/faces", 8)]
        published[engine] = [[(f["box"], f["label"]) for f in m["faces"]] for m in faces]
        stats = [json.loads(p) for p in sub.wait_for("/stats", 1)]
        assert stats[-1]["cpu_ms_per_frame"] > 0 and 0 < stats[-1]["detect_share"] < 1
        sub.close()
    for engine in ENGINES:
        assert published[engine] == published["opencv"], engine


@pytest.mark.parametrize("every", [0, 1.5, "2"])
def test_the_config_refuses_a_detection_interval_that_is_not_a_frame_count(tmp_path, every):
    import yaml

    path = tmp_path / "c.yaml"
    (tmp_path / "x.mp4").write_bytes(b"")
    path.write_text(yaml.safe_dump({"device": "t", "cameras": [{"name": "c", "source": "x.mp4"}],
                                    "detector": {"every": every}}))
    with pytest.raises(MotivnetError, match="detector.every"):
        load_config(path, env={})


@pytest.mark.parametrize("size", sorted(TFLITE_YUNET))
def test_each_shipped_tflite_file_is_the_onnx_network(size):
    """Checked against the model it came from: the LiteRT file of each input size gives the
    any-size ONNX file's outputs (ONNX Runtime) on the same input."""
    from ai_edge_litert.interpreter import Interpreter

    from motivnet_edge.targets.engines.onnxruntime import cpu_session

    w, h = size
    x = np.random.default_rng(w + h).uniform(0, 255, (1, h, w, 3)).astype(np.float32)
    net = Interpreter(model_path=str(TFLITE_YUNET[size]))
    net.allocate_tensors()
    net.set_tensor(net.get_input_details()[0]["index"], x)
    net.invoke()
    got = net.get_tensor(net.get_output_details()[0]["index"])
    ref = cpu_session(ANY_SIZE_YUNET).run(None, {"input": x.transpose(0, 3, 1, 2).copy()})
    rows = np.concatenate([np.concatenate([ref[i], ref[3 + i], ref[6 + i], ref[9 + i]], 2)
                           for i in range(3)], 1)
    np.testing.assert_allclose(got, rows, rtol=1e-3, atol=1e-3)


def test_a_frame_no_litert_file_was_made_for_runs_in_opencv(caplog):
    frame = frames(1)[0][:200, :200]  # padded to 224x224: no file of that size
    ref = open_yunet("opencv", None, 0.6, 0.3, 50).detect(frame)
    runner = open_yunet("litert", None, 0.6, 0.3, 50)
    with caplog.at_level("INFO"):
        np.testing.assert_array_equal(runner.detect(frame), ref)
    assert "no file for 200x200 frames" in caplog.text


@pytest.mark.parametrize("section", ["model", "detector"])
def test_the_config_refuses_threads_below_one(tmp_path, section):
    import yaml

    path = tmp_path / "c.yaml"
    (tmp_path / "x.mp4").write_bytes(b"")
    path.write_text(yaml.safe_dump({"device": "t", "cameras": [{"name": "c", "source": "x.mp4"}],
                                    section: {"threads": 0}}))
    with pytest.raises(MotivnetError, match=f"{section}.threads: 0 must be at least 1"):
        load_config(path, env={})
