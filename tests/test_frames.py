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
