"""The daemon against a real broker: schema, no loss across a broker outage, SIGTERM, camera
loss, and clear errors for bad configs and artifacts."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from tests.helpers import Subscriber, onnx_artifact, synthetic_video


def write_config(tmp_path, port, source, **over):
    artifact = onnx_artifact(tmp_path)
    cfg = {"device": "testbox", "model": {"artifact": str(artifact), "target": "cpu"},
           "cameras": [{"name": "door", "source": str(source), **over.pop("camera", {})}],
           "mqtt": {"host": "127.0.0.1", "port": port, "stats_interval": 1.0,
                    **over.pop("mqtt", {})}}
    cfg.update(over)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(config, *extra, env=None):
    return subprocess.Popen([sys.executable, "-m", "motivnet_edge.cli", "run",
                             "--config", str(config), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


@pytest.mark.slow
def test_results_arrive_with_the_documented_schema(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 12)
    sub = Subscriber(broker.port)
    proc = start_daemon(write_config(tmp_path, broker.port, video), "--max-frames", "10")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    faces = [json.loads(p) for p in sub.wait_for("/door/faces", 5)]
    msg = faces[0]
    assert {"schema", "seq", "ts", "camera", "frame", "faces", "timings_ms"} <= set(msg)
    assert msg["camera"] == "door"
    face = msg["faces"][0]
    assert {"track", "box", "label", "score", "probs"} <= set(face)
    assert len(face["box"]) == 4 and abs(sum(face["probs"].values()) - 1) < 0.01
    assert face["label"] == max(face["probs"], key=face["probs"].get)
    seqs = [m["seq"] for m in faces]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    emotions = [json.loads(p)["label"] for p in sub.wait_for("/door/emotion")]
    assert emotions[-1] in face["probs"]
    # the retained emotion is written when it changes, not with every frame
    assert len(emotions) < len(faces)
    assert all(a != b for a, b in zip(emotions, emotions[1:], strict=False)), emotions
    avail = sub.wait_for("testbox/availability", 2)
    assert avail[0] == b"online" and avail[-1] == b"offline"
    stats = json.loads(sub.wait_for("testbox/stats")[-1])
    assert {"fps", "latency_ms", "skipped_frames", "queue_depth", "spool_depth", "reconnects",
            "rss_mb"} <= set(stats)
    sub.close()


@pytest.mark.slow
def test_broker_outage_loses_no_result(tmp_path, broker):
    if not broker.restartable:
        pytest.skip("needs mosquitto to stop and restart a broker on the same port")
    video = synthetic_video(tmp_path / "v.avi", 60)
    sub = Subscriber(broker.port)
    proc = start_daemon(write_config(tmp_path, broker.port, video, camera={"fps": 8}),
                        "--max-frames", "40")
    sub.wait_for("/door/faces", 5)
    broker.stop()  # several seconds without a broker, mid-stream
    time.sleep(4)
    broker.start()
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    time.sleep(1.5)
    seqs = [json.loads(p)["seq"] for p in sub.on("/door/faces")]
    unique = sorted(set(seqs))  # QoS 1 may deliver twice; seq removes duplicates
    assert unique == list(range(1, 41)), f"missing {set(range(1, 41)) - set(unique)}"
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == unique  # in order
    assert "lost the broker" in err
    sub.close()


@pytest.mark.slow
def test_sigterm_publishes_offline_and_exits_zero(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 20)
    sub = Subscriber(broker.port)
    proc = start_daemon(write_config(tmp_path, broker.port, video, camera={"loop": True}))
    sub.wait_for("/door/faces", 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert sub.wait_for("testbox/availability", 2)[-1] == b"offline"
    assert "WARNING" not in err, err[-2000:]  # a stop we asked for is not a warning
    sub.close()


def reload_with(tmp_path, broker, change):
    """A daemon on a looping video whose results arrive; then its config file changed by
    ``change(cfg)`` and SIGHUP sent. Returns the subscriber and the process."""
    video = synthetic_video(tmp_path / "v.avi", 20)
    sub = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, video, camera={"loop": True})
    proc = start_daemon(config)
    sub.wait_for("/door/faces", 2)
    cfg = yaml.safe_load(config.read_text())
    change(cfg)
    config.write_text(yaml.safe_dump(cfg))
    proc.send_signal(signal.SIGHUP)
    return sub, proc


@pytest.mark.slow
def test_sighup_reloads_the_config(tmp_path, broker):
    def rename(cfg):  # the camera is renamed in the file
        cfg["cameras"][0]["name"] = "gate"

    sub, proc = reload_with(tmp_path, broker, rename)
    sub.wait_for("/gate/faces", 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "SIGHUP: reloading" in err
    sub.close()


def _by_frame(payloads: list[bytes], length: int = 8) -> dict[int, list]:
    """The first face's probabilities per frame of a looping video of ``length`` frames (every
    frame is handed over, numbered from 1 across loops; smoothing off: the model's own)."""
    out = {}
    for p in payloads:
        m = json.loads(p)
        out.setdefault((m["frame"] - 1) % length, m["faces"][0]["probs"])
    return out


@pytest.mark.slow
def test_sighup_is_a_transaction_a_bad_artifact_changes_nothing_a_good_one_switches(
        tmp_path, broker):
    """Onto a truncated artifact: one ERROR, and the run goes on untouched (its run id, its
    MQTT connection, its sequence, its model). Onto a good new artifact: the model switches,
    in place (same run id and connection)."""
    video = synthetic_video(tmp_path / "v.avi", 8)
    sub = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, video, camera={"loop": True},
                          pipeline={"smoothing": 0.0})
    proc = start_daemon(config)

    def reload(artifact):
        cfg = yaml.safe_load(config.read_text())
        cfg["model"]["artifact"] = str(artifact)
        config.write_text(yaml.safe_dump(cfg))
        n = len(sub.on("/door/faces"))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        return sub.wait_for("/door/faces", n + 16)[n + 8:]  # well after the reload

    try:
        first = _by_frame(sub.wait_for("/door/faces", 10))
        truncated = tmp_path / "cut" / "student-fp32.onnx"
        truncated.parent.mkdir()
        data = onnx_artifact(tmp_path / "cut").read_bytes()
        truncated.write_bytes(data[: len(data) // 2])
        after_bad = _by_frame(reload(truncated))
        same = [f for f in after_bad if f in first]
        assert same and all(after_bad[f] == first[f] for f in same), "still the old model"
        (tmp_path / "new").mkdir()
        after_good = _by_frame(reload(onnx_artifact(tmp_path / "new", seed=7)))
        same = [f for f in after_good if f in first]
        assert same and all(after_good[f] != first[f] for f in same), "the new model runs"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert err.count("ERROR") == 1 and "reload of" in err and "truncated" in err, err[-3000:]
    faces = [json.loads(p) for p in sub.on("/door/faces")]
    assert len({m["run"] for m in faces}) == 1, "one run: no restart was seen"
    seqs = sorted({m["seq"] for m in faces})
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq continuous"
    assert sub.on("testbox/availability").count(b"online") == 1, "one connection"
    assert "in place" in err
    sub.close()


@pytest.mark.slow
def test_video_that_ends_stops_the_daemon_cleanly(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 6)
    sub = Subscriber(broker.port)
    proc = start_daemon(write_config(tmp_path, broker.port, video))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    statuses = [json.loads(p)["status"] for p in sub.wait_for("/door/status", 2)]
    assert statuses == ["online", "ended"]
    assert len(sub.wait_for("/door/faces", 6)) == 6  # every frame, then a clean stop
    assert "every source ended" in err and "WARNING" not in err, err[-2000:]
    sub.close()


@pytest.mark.slow
def test_max_frames_stop_logs_no_warning(tmp_path, broker):
    video = synthetic_video(tmp_path / "v.avi", 12)
    proc = start_daemon(write_config(tmp_path, broker.port, video), "--max-frames", "5")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "WARNING" not in err and "disconnected from the broker" in err, err[-2000:]


@pytest.mark.slow
def test_unreachable_broker_is_logged_and_sigterm_exits_within_the_flush_timeout(tmp_path):
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    video = synthetic_video(tmp_path / "v.avi", 10)
    proc = start_daemon(write_config(tmp_path, port, video, camera={"loop": True},
                                     mqtt={"flush_timeout": 2.0, "stats_interval": 0.5}))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any("cannot reach the MQTT broker" in x for x in lines):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)[-2000:]
        time.sleep(0.1)
    time.sleep(1.0)  # some results pile up in the spool
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    took = time.monotonic() - t0
    reader.join(5)
    err = "".join(lines)
    assert took <= 2.0 + 2.0, f"{took:.1f} s to stop"  # the flush timeout, plus the last frame
    assert proc.returncode == 1, err[-2000:]  # results were lost: not a clean exit
    assert "results LOST at exit" in err and "ERROR" in err
    stats = [x for x in lines if "stats {" in x]
    assert stats and "'broker_connected': False" in stats[-1]
    assert "'connect_failures': " in stats[-1]


class VideoServer:
    """A network camera: a video file served over HTTP on a fixed port, stoppable and
    restartable (a URL is a live source, so it is reopened, never 'ended')."""

    def __init__(self, folder, port: int = 0) -> None:
        import functools
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_camera_that_vanishes_is_reported_and_comes_back(tmp_path):
    from motivnet_edge.edge.config import CameraConfig
    from motivnet_edge.edge.sources import LatestFrameSource

    synthetic_video(tmp_path / "v.avi", 3)
    server = VideoServer(tmp_path)
    events = []
    src = LatestFrameSource(CameraConfig(name="c", source=f"http://127.0.0.1:{server.port}/v.avi",
                                         reopen_backoff=0.1),
                            lambda cam, status, detail, n: events.append(status), paced=True)
    src.start()
    for _ in range(3):
        assert src.latest(10.0) is not None
    server.stop()  # the camera vanishes
    deadline = time.monotonic() + 20
    while "unavailable" not in events and time.monotonic() < deadline:
        time.sleep(0.05)
    server = VideoServer(tmp_path, server.port)  # and comes back
    try:
        assert src.latest(20.0) is not None
    finally:
        src.stop()
        server.stop()
    assert events[0] == "online" and "lost" in events and "unavailable" in events
    assert "reopened" in events and "ended" not in events and src.reopens >= 2


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "motivnet_edge.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_bad_config_names_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {artifact: a.onnx}\nmqtt: {port: 'x'}\n")
    res = run_cli("run", "--config", path)
    assert res.returncode == 2 and "mqtt.port" in res.stderr and "Traceback" not in res.stderr
    path.write_text("model: {artifact: a.onnx}\ncameras: [{name: a, colour: red}]\n")
    res = run_cli("run", "--config", path)
    assert res.returncode == 2 and "cameras[0]" in res.stderr and "colour" in res.stderr


def test_missing_artifact_is_named(tmp_path):
    path = tmp_path / "c.yaml"  # a camera that opens: the artifact is what is wrong
    path.write_text(f"model: {{artifact: {tmp_path}/nope.onnx, target: cpu}}\n"
                    f"cameras: [{{name: c, source: {synthetic_video(tmp_path / 'v.avi', 1)}}}]\n")
    res = run_cli("run", "--config", path)
    assert res.returncode == 2 and "nope.onnx" in res.stderr and "does not exist" in res.stderr


def test_artifact_with_wrong_sha256_is_refused(tmp_path):
    artifact = onnx_artifact(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"files": [{"path": artifact.name, "sha256": "0" * 64, "role": "onnx-fp32"}]}))
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{artifact: {artifact}, target: cpu}}\n"
                    f"cameras: [{{name: c, source: {synthetic_video(tmp_path / 'v.avi', 1)}}}]\n")
    res = run_cli("run", "--config", path)
    assert res.returncode == 2 and "sha256" in res.stderr and artifact.name in res.stderr


def test_password_comes_from_environment_never_the_config(tmp_path):
    from motivnet_edge.edge.config import MqttConfig, from_dict
    from motivnet_edge.edge.mqtt import mqtt_password

    with pytest.raises(Exception, match="unknown keys.*password"):
        from_dict({"model": {"artifact": "a.onnx"}, "mqtt": {"password": "hunter2"}})
    assert mqtt_password(MqttConfig(), {"MOTIVNET_MQTT_PASSWORD": "s3"}) == "s3"
    secret = tmp_path / "pw"
    secret.write_text("fromfile\n")
    assert mqtt_password(MqttConfig(password_file=str(secret)), {}) == "fromfile"


@pytest.mark.slow
def test_systemd_hears_ready_watchdog_reloading_and_stopping(tmp_path, broker):
    """The daemon as systemd starts a Type=notify unit: NOTIFY_SOCKET names a datagram socket
    the test reads, WATCHDOG_USEC asks for pings."""
    import socket
    import tempfile

    folder = tempfile.mkdtemp(prefix="sd-", dir="/tmp")  # a unix socket path is short
    address = os.path.join(folder, "notify")
    heard = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    heard.bind(address)
    heard.settimeout(0.2)
    states: list[str] = []

    def listen() -> None:
        try:
            states.extend(heard.recv(4096).decode().splitlines())
        except TimeoutError:
            pass

    def wait_for(state: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while state not in states:
            assert time.monotonic() < end, f"{state} not heard: {states}"
            listen()

    video = synthetic_video(tmp_path / "v.avi", 20)
    sub = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, video, camera={"loop": True})
    proc = start_daemon(config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    try:
        wait_for("READY=1")
        assert sub.on("/door/faces") or sub.wait_for("/door/faces", 1)
        wait_for("WATCHDOG=1")
        n = states.count("WATCHDOG=1")
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            listen()
        assert states.count("WATCHDOG=1") >= n + 2, "pings keep coming from the frame loop"
        states.clear()
        proc.send_signal(signal.SIGHUP)
        wait_for("RELOADING=1")
        wait_for("READY=1")
        assert states.index("RELOADING=1") < states.index("READY=1")
        proc.send_signal(signal.SIGTERM)
        wait_for("STOPPING=1")
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        heard.close()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
