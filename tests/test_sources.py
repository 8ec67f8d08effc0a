"""Frame sources under load: a slow consumer gets the newest frame and the stale ones are
counted; the frame-rate cap holds; every kind of source string opens the right way."""

import time

from motivnet_edge.edge.config import CameraConfig
from motivnet_edge.edge.sources import LatestFrameSource, wait_interval
from tests.helpers import synthetic_video, write_faces


def test_slow_consumer_gets_the_latest_frame_and_stale_ones_are_counted(tmp_path):
    video = synthetic_video(tmp_path / "v.avi", 120)
    # an unpaced looping file stands in for a camera that delivers faster than the model
    src = LatestFrameSource(CameraConfig(name="c", source=str(video), loop=True),
                            paced=False).start()
    got = []
    while len(got) < 4:
        frame = src.latest(5.0)
        assert frame is not None
        got.append(frame[0])
        time.sleep(0.15)  # a model far slower than the camera
    src.stop()
    assert got == sorted(got) and len(set(got)) == len(got)
    assert got[-1] - got[0] > len(got)  # frames in between were skipped ...
    assert src.skipped >= got[-1] - len(got)  # ... and counted
    assert src.frames_read >= got[-1]


def test_paced_file_source_hands_over_every_frame(tmp_path):
    write_faces(tmp_path / "imgs", 5, seed=1)
    src = LatestFrameSource(CameraConfig(name="f", source=str(tmp_path / "imgs")),
                            paced=True).start()
    indices = []
    for _ in range(5):
        frame = src.latest(5.0)
        time.sleep(0.05)
        indices.append(frame[0])
    src.stop()
    assert indices == [1, 2, 3, 4, 5] and src.skipped == 0


def test_frame_rate_cap():
    start = last = time.monotonic()
    for _ in range(6):
        wait_interval(last, fps=20.0)
        last = time.monotonic()
    assert last - start >= 6 / 20.0 - 0.01
    t0 = time.monotonic()
    wait_interval(t0 - 1.0, fps=0.0)  # no cap
    assert time.monotonic() - t0 < 0.05


def test_unopenable_sources_report_unavailable(tmp_path):
    events = []
    src = LatestFrameSource(CameraConfig(name="x", source=str(tmp_path / "none.mp4"),
                                         reopen_backoff=0.05),
                            lambda cam, status, detail, n: events.append((status, detail)))
    src.start()
    deadline = time.monotonic() + 5
    while len(events) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    src.stop()
    assert events and all(s == "unavailable" for s, _ in events)
    assert "none.mp4" in events[0][1] and src.reopens >= 1


def _events(src_cfg, wait_for, timeout=10.0):
    events = []
    src = LatestFrameSource(src_cfg, lambda cam, status, detail, n: events.append(status),
                            paced=True).start()
    end = time.monotonic() + timeout
    frames = 0
    while time.monotonic() < end and not wait_for(src, frames):
        if src.latest(0.2) is not None:
            frames += 1
    src.stop()
    return src, events, frames


def test_a_looping_video_is_replayed_without_a_reopen(tmp_path):
    video = synthetic_video(tmp_path / "v.avi", 3)
    src, events, frames = _events(CameraConfig(name="c", source=str(video), loop=True),
                                  lambda s, n: n >= 8)
    assert frames >= 8 and src.loops >= 2
    assert events == ["online"] and src.reopens == 0


def test_recorded_footage_that_ends_is_ended_not_lost(tmp_path):
    video = synthetic_video(tmp_path / "v.avi", 3)
    src, events, frames = _events(CameraConfig(name="c", source=str(video)),
                                  lambda s, n: s.finished)
    assert frames == 3 and src.finished
    assert events == ["online", "ended"]
