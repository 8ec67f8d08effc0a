"""Camera sources by kind: GStreamer pipelines read through GStreamer's own Python bindings by a
venv whose OpenCV has no GStreamer (real pipelines, the daemon delivering to a real broker), the
clear start-up error where a kind cannot be opened at all, dead streams that time out instead of
hanging, kinds inferred from the source string, and ``motivnet-edge cameras``."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from motivnet_edge.edge.config import CameraConfig, from_dict, source_kind
from motivnet_edge.edge.gstreamer import opencv_has_gstreamer
from motivnet_edge.edge.readers import CannotOpen, open_reader
from motivnet_edge.edge.sources import LatestFrameSource
from motivnet_edge.targets.errors import MotivnetError
from tests.helpers import Subscriber, synthetic_video


def system_gi_site() -> str | None:
    """The system's site folder holding PyGObject for this very Python version (Debian's
    python3-gi), or None."""
    try:
        done = subprocess.run(["/usr/bin/python3", "-c", "import os, sys, gi; print('%d.%d' % "
                               "sys.version_info[:2]); print(os.path.dirname(os.path.dirname("
                               "gi.__file__)))"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or lines[0] != f"{sys.version_info[0]}.{sys.version_info[1]}":
        return None
    return lines[1]


GI_SITE = system_gi_site()
needs_gi = pytest.mark.skipif(GI_SITE is None, reason="no Debian python3-gi for this Python "
                              "version (apt-get install python3-gi gir1.2-gstreamer-1.0)")


def with_system_gi() -> list[str]:
    """The command line of motivnet-edge in this venv with the system's PyGObject behind the
    venv's packages, as a venv made with --system-site-packages sees it."""
    return [sys.executable, "-c", f"import site, sys; site.addsitedir({GI_SITE!r}); "
            "from motivnet_edge.cli import main; sys.exit(main(sys.argv[1:]))"]


def plain() -> list[str]:
    return [sys.executable, "-m", "motivnet_edge.cli"]


def daemon_config(path: Path, source: str, port: int, **camera) -> Path:
    path.write_text(yaml.safe_dump({
        "device": "kinds", "model": {"target": "cpu"},
        "cameras": [{"name": "cam0", "source": source, **camera}],
        "mqtt": {"host": "127.0.0.1", "port": port, "prefix": "motivnet"}}))
    return path


def test_kinds_are_inferred_from_the_source_and_can_be_named():
    cases = {0: "v4l2", "2": "v4l2", "/dev/video3": "v4l2", "libcamera:0": "libcamera",
             "libcamera:imx708": "libcamera", "videotestsrc ! appsink": "gstreamer",
             "rtsp://cam.local/live": "stream", "http://cam/mjpg": "stream",
             "clip.mp4": "file", "photos/": "file"}
    for source, kind in cases.items():
        assert source_kind(CameraConfig(source=source)) == kind, source
    assert source_kind(CameraConfig(source="libcamerasrc", kind="gstreamer")) == "gstreamer"
    assert source_kind(CameraConfig(source=0, kind="libcamera")) == "libcamera"


@pytest.mark.parametrize("camera, words", [
    ({"source": 0, "width": 1280}, "width 1280 and height 0"),
    ({"source": "rtsp://x/y", "width": 640, "height": 480}, "this source is stream"),
    ({"source": 0, "format": "MJPEG"}, "four characters"),
    ({"source": "a.mp4", "format": "MJPG"}, "four characters"),
    ({"source": 0, "kind": "usb"}, "'usb' is not auto"),
    ({"source": 0, "kind": "gstreamer"}, "camera number"),
    ({"source": "cam.mp4", "kind": "v4l2"}, "no V4L2 device"),
    ({"source": "rtsp://x/y", "timeout": 0}, "timeout 0"),
])
def test_camera_settings_that_cannot_work_name_the_field(camera, words):
    with pytest.raises(MotivnetError, match="cameras\\[0\\]") as err:
        from_dict({"cameras": [{"name": "c", **camera}]}, env={})
    assert words in str(err.value)


def test_a_v4l2_camera_takes_size_rate_and_format():
    cfg = from_dict({"cameras": [{"name": "usb", "source": "/dev/video0", "width": 1280,
                                  "height": 720, "fps": 30, "format": "MJPG"}]}, env={})
    cam = cfg.cameras[0]
    assert (cam.width, cam.height, cam.fps, cam.format) == (1280, 720, 30.0, "MJPG")


def _run_daemon(cmd: list[str], config: Path, timeout: float = 240):
    return subprocess.run([*cmd, "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=timeout)


@needs_gi
@pytest.mark.slow
def test_daemon_reads_a_gstreamer_pipeline_through_pygobject(tmp_path, broker):
    assert not opencv_has_gstreamer(), "the point: this venv's OpenCV cannot open a pipeline"
    video = synthetic_video(tmp_path / "clip.avi", 6)
    pipeline = f"filesrc location={video} ! decodebin ! videoconvert ! appsink"
    sub = Subscriber(broker.port)
    run = _run_daemon(with_system_gi(), daemon_config(tmp_path / "c.yaml", pipeline,
                                                      broker.port))
    assert run.returncode == 0, run.stderr
    assert "through PyGObject" in run.stderr and "not live" in run.stderr
    faces = [json.loads(p) for p in sub.wait_for("/faces", 3, timeout=60)]
    assert len(faces) >= 3 and all(f["faces"][0]["label"] for f in faces)
    status = [json.loads(p)["status"] for t, p, _ in sub.messages if t.endswith("cam0/status")]
    assert status[:1] == ["online"] and "ended" in status  # footage that ends, not a lost one
    sub.close()


@needs_gi
@pytest.mark.slow
def test_a_live_pipeline_that_stops_is_lost_and_reopened_with_gstreamers_reason():
    site = GI_SITE
    code = f"""
import site, time
site.addsitedir({site!r})
from motivnet_edge.edge.config import CameraConfig
from motivnet_edge.edge.sources import LatestFrameSource
events = []
cam = CameraConfig(name="c", source="videotestsrc is-live=true num-buffers=3 ! "
                   "video/x-raw,width=160,height=120 ! videoconvert ! appsink",
                   reopen_backoff=0.05)
src = LatestFrameSource(cam, lambda c, s, d, n: events.append((s, d))).start()
end = time.monotonic() + 30
while sum(s == "reopened" for s, _ in events) < 1 and time.monotonic() < end:
    src.latest(0.2)
src.stop()
print(repr(events)); print(src.frames_read)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    events = eval(done.stdout.splitlines()[0])  # noqa: S307 (our own repr)
    assert [s for s, _ in events][:3] == ["online", "lost", "reopened"], events
    assert events[1][1] == "end of stream"  # a live source that ends is lost, not ended
    assert int(done.stdout.splitlines()[1]) >= 3


@needs_gi
def test_a_pipeline_that_cannot_start_says_why(tmp_path):
    code = f"""
import site
site.addsitedir({GI_SITE!r})
from motivnet_edge.edge.config import CameraConfig
from motivnet_edge.edge.readers import CannotOpen, open_reader
try:
    open_reader(CameraConfig(source="filesrc location={tmp_path}/gone.avi ! decodebin ! appsink"))
except CannotOpen as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "gone.avi" in done.stdout and "not found" in done.stdout.lower(), done.stdout


@pytest.mark.parametrize("source, words", [
    ("videotestsrc ! videoconvert ! appsink", ["python3-gi", "--system-site-packages"]),
    ("libcamera:0", ["python3-picamera2", "--system-site-packages"]),
    ("/dev/video9", ["no V4L2 device /dev/video9", "motivnet-edge cameras"]),
])
def test_a_kind_this_install_cannot_open_stops_the_daemon_at_start(tmp_path, source, words):
    if "!" in source and opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer")
    run = _run_daemon(plain(), daemon_config(tmp_path / "c.yaml", source, 1), timeout=120)
    assert run.returncode == 2, run.stderr  # not a reopen loop: it ends, and says why
    assert "cameras[0] (cam0)" in run.stderr and "Traceback" not in run.stderr
    for w in words:
        assert w in run.stderr


def test_a_dead_stream_times_out_instead_of_hanging():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []  # accepts and never answers
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(2)],
                     daemon=True).start()
    port = server.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/video.mjpg", f"rtsp://u:pw@127.0.0.1:{port}/live"):
        start = time.monotonic()
        with pytest.raises(CannotOpen) as err:
            open_reader(CameraConfig(source=url, timeout=1.0))
        assert time.monotonic() - start < 8
        assert "within 1 s" in str(err.value) and "pw" not in str(err.value)
    server.close()


def _mjpeg_server(frames: int) -> tuple[socket.socket, int]:
    """An HTTP MJPEG camera that sends ``frames`` pictures, then stalls with the socket open."""
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; "
                     b"boundary=frame\r\n\r\n")
        for _ in range(frames):
            conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg.tobytes() + b"\r\n")
        time.sleep(30)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.slow
def test_a_stream_that_stalls_is_lost_after_its_timeout():
    server, port = _mjpeg_server(5)
    events = []
    cam = CameraConfig(name="ip", source=f"http://127.0.0.1:{port}/video", timeout=1.0,
                       reopen_backoff=60)
    src = LatestFrameSource(cam, lambda c, s, d, n: events.append((s, d))).start()
    end = time.monotonic() + 20
    while not any(s == "lost" for s, _ in events) and time.monotonic() < end:
        src.latest(0.2)
    src.stop()
    server.close()
    assert [s for s, _ in events][:2] == ["online", "lost"], events
    assert src.frames_read >= 1


def test_cameras_lists_what_this_box_has(tmp_path):
    done = subprocess.run([*plain(), "cameras"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "V4L2 devices" in out and "libcamera cameras" in out and "GStreamer pipelines" in out
    if not list(Path("/dev").glob("video*")):
        assert "none found" in out and "No camera found on this machine" in out
    assert "python3-picamera2" in out  # picamera2 is no package of this venv


def test_snapshot_writes_a_frame_of_a_file_source_through_the_daemons_reader(tmp_path):
    video = synthetic_video(tmp_path / "clip.avi", 2)
    out = tmp_path / "snap" / "frame.png"
    done = subprocess.run([*plain(), "cameras", "--snapshot", str(video), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(out)).shape == (480, 640, 3)
    bad = subprocess.run([*plain(), "cameras", "--snapshot", str(tmp_path / "none.avi"),
                          str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "none.avi" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.png").exists()


@needs_gi
def test_snapshot_of_a_gstreamer_source_by_its_config_name(tmp_path):
    config = daemon_config(tmp_path / "c.yaml", "videotestsrc num-buffers=1 ! "
                           "video/x-raw,width=321,height=241 ! videoconvert ! appsink", 1883)
    out = tmp_path / "gst.jpg"
    done = subprocess.run([*with_system_gi(), "cameras", "--config", str(config),
                           "--snapshot", "cam0", str(out)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert cv2.imread(str(out)).shape == (241, 321, 3)  # padded rows unpacked
    listed = subprocess.run([*with_system_gi(), "cameras"], capture_output=True, text=True,
                            timeout=120)
    assert "through PyGObject" in listed.stdout


@needs_gi
def test_classify_reads_cameras_as_the_daemon_does(tmp_path):
    video = synthetic_video(tmp_path / "clip.avi", 3)
    pipeline = f"filesrc location={video} ! decodebin ! videoconvert ! appsink"
    done = subprocess.run([*with_system_gi(), "classify", "--max-frames", "2", pipeline],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\tface 1/" in done.stdout
    missing = subprocess.run([*plain(), "classify", "/dev/video9", str(video)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "no V4L2 device /dev/video9" in missing.stderr
    assert "\tface 1/" in missing.stdout  # the readable source still ran
