"""The frame feed: detection of the next frame overlaps classification of this one, with the
same results as one frame at a time and no latency added to a camera slower than the
pipeline."""

from __future__ import annotations

import json
import threading
import time

import pytest

from motivnet_edge.edge.config import CameraConfig, load_config
from motivnet_edge.edge.daemon import Daemon, build_pipeline
from motivnet_edge.edge.frames import FrameFeed
from motivnet_edge.edge.sources import LatestFrameSource
from tests.helpers import Subscriber, onnx_artifact, synthetic_video, write_faces


def _published(tmp_path, port: int, video, overlap: bool) -> tuple[dict, set]:
    """The faces (box, label, probabilities) the daemon publishes per frame of ``video``, and
    the threads its detections ran in."""
    device = f"overlap-{overlap}"
    path = tmp_path / f"{device}.yaml"
    path.write_text(json.dumps({
        "device": device, "model": {"artifact": str(onnx_artifact(tmp_path)), "target": "cpu",
                                    "threads": 1},
        "pipeline": {"overlap": overlap, "smoothing": 0.0},
        "cameras": [{"name": "door", "source": str(video)}],
        "mqtt": {"host": "127.0.0.1", "port": port}}))
    sub = Subscriber(port, f"motivnet/{device}")
    daemon = Daemon(load_config(path))
    threads, detect = set(), daemon.pipeline.detect

    def recorded(camera, frame):
        threads.add(threading.current_thread().name)
        return detect(camera, frame)
    daemon.pipeline.detect = recorded
    assert daemon.run() == 0
    got = {}
    for p in sub.wait_for("/door/faces", 20):
        m = json.loads(p)
        got[m["frame"]] = [(f["box"], f["label"], f["probs"]) for f in m["faces"]]
    sub.client.disconnect()
    return got, threads


@pytest.mark.slow
def test_overlapped_detection_publishes_what_one_frame_at_a_time_publishes(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 20)
    one, one_threads = _published(tmp_path, broker.port, video, overlap=False)
    both, both_threads = _published(tmp_path, broker.port, video, overlap=True)
    assert len(one) == 20 and both == one
    assert one_threads == {"MainThread"}
    assert both_threads and all(t.startswith("detect") for t in both_threads)


def test_a_frame_from_a_slow_camera_does_not_wait_for_the_next(tmp_path):
    """A camera giving 4 frames a second (a live source, not paced): each frame is handed out
    once its own detection is done, long before its successor comes."""
    folder = tmp_path / "photos"
    write_faces(folder, 3)
    cfg = load_config_for(tmp_path, folder)
    pipeline, _ = build_pipeline(cfg)
    src = LatestFrameSource(CameraConfig(name="slow", source=str(folder), fps=4.0, loop=True),
                            paced=False).start()
    feed = FrameFeed(overlap=True)
    waits = []
    try:
        while len(waits) < 3:
            for taken in feed.round([src], pipeline):
                taken.faces()
                waits.append(time.monotonic() - taken.at)
    finally:
        feed.close()
        src.stop()
        pipeline.close()
    assert max(waits) < 0.15, waits  # the next frame is 0.25 s away


def load_config_for(tmp_path, source):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"model": {"artifact": str(onnx_artifact(tmp_path)),
                                          "target": "cpu"},
                                "cameras": [{"name": "slow", "source": str(source)}]}))
    return load_config(path)


def test_tracks_of_recorded_footage_age_with_the_footage_not_the_wall_clock(tmp_path, broker):
    """A 2-fps recording where the face is gone for 3 frames (1.5 s of footage) and comes
    back, processed in far less wall time than that: with track_ttl 1 s the face comes back
    as a new track, as it would live."""
    import cv2
    import numpy as np

    from motivnet_edge.edge.data.synthetic import synth_scene

    scene, _ = synth_scene(np.random.default_rng(0), [3])
    blank = np.full_like(scene, 127)
    video = tmp_path / "gap.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 2.0, (640, 480))
    for frame in [scene, scene, blank, blank, blank, scene, scene]:
        writer.write(frame)
    writer.release()
    src = LatestFrameSource(CameraConfig(name="c", source=str(video)), paced=True).start()
    index, _ = src.latest(timeout=5.0)
    assert src.clock(index) == index / 2.0
    src.stop()
    path = tmp_path / "gap.yaml"
    path.write_text(json.dumps({
        "device": "gap", "model": {"artifact": str(onnx_artifact(tmp_path)), "target": "cpu"},
        "pipeline": {"track_ttl": 1.0}, "cameras": [{"name": "door", "source": str(video)}],
        "mqtt": {"host": "127.0.0.1", "port": broker.port}}))
    sub = Subscriber(broker.port, "motivnet/gap")
    started = time.monotonic()
    assert Daemon(load_config(path)).run() == 0
    assert time.monotonic() - started < 3.5  # faster than the footage's 3.5 s
    tracks = {m["frame"]: {f["track"] for f in m["faces"]}
              for m in map(json.loads, sub.wait_for("/door/faces", 4))}
    sub.client.disconnect()
    assert tracks[1] == tracks[2] and tracks[6] == tracks[7]
    assert not tracks[1] & tracks[6]


def test_a_folder_of_photos_has_no_clock_of_its_own(tmp_path):
    folder = tmp_path / "photos"
    write_faces(folder, 2)
    src = LatestFrameSource(CameraConfig(name="c", source=str(folder)), paced=True).start()
    index, _ = src.latest(timeout=5.0)
    src.stop()
    assert src.clock(index) is None
