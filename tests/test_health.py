"""``/healthz`` and ``/metrics`` of a running daemon: 503 with the reason when its camera and
broker go away, 200 when they are back; the metrics parse with prometheus_client's own parser."""

import functools
import http.server
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from motivnet_edge.edge.config import HealthConfig, from_dict
from motivnet_edge.targets.errors import MotivnetError
from tests.helpers import synthetic_video

prometheus = pytest.importorskip("prometheus_client")


class FileServer:
    """A folder over HTTP on a fixed loopback port, stoppable and restartable: a network
    camera that can go away and come back."""

    def __init__(self, folder, port: int) -> None:
        self.folder, self.port, self.httpd = folder, port, None

    def start(self) -> None:
        quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,),
                     {"log_message": lambda *a: None})
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.httpd = socketserver.ThreadingTCPServer(
            ("127.0.0.1", self.port), functools.partial(quiet, directory=str(self.folder)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_status(port: int, code: int, timeout: float = 90.0) -> str:
    end = time.monotonic() + timeout
    seen = (0, "")
    while time.monotonic() < end:
        seen = get(port, "/healthz")
        if seen[0] == code:
            return seen[1]
        time.sleep(0.3)
    raise AssertionError(f"/healthz never answered {code}; last {seen}")


def metrics(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(port, "/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def frames_seen(port: int, camera: str, timeout: float = 60.0) -> dict:
    """The metrics once the camera has counted a frame: /healthz turns 200 as soon as the
    camera is open, which can be a moment before its first frame is processed."""
    end = time.monotonic() + timeout
    while True:
        found = metrics(port)
        frames = next(s.value for s in found["motivnet_frames"].samples
                      if s.labels["camera"] == camera)
        if frames > 0 or time.monotonic() > end:
            assert frames > 0, f"camera {camera} counted no frame in {timeout} s"
            return found
        time.sleep(0.3)


def test_health_config_is_checked():
    with pytest.raises(MotivnetError, match="health.port"):
        from_dict({"health": {"port": 70000}}, env={})
    with pytest.raises(MotivnetError, match="health.camera_grace"):
        from_dict({"health": {"port": 1, "camera_grace": float("nan")}}, env={})
    assert HealthConfig().port is None and HealthConfig().bind == "127.0.0.1"  # off, local


@pytest.mark.slow
def test_healthz_follows_camera_and_broker_and_metrics_parse(tmp_path, broker):
    if not broker.restartable:
        pytest.skip("needs mosquitto to stop and restart the broker")
    synthetic_video(tmp_path / "clip.avi", 30)
    camera = FileServer(tmp_path, free_port())
    camera.start()
    health = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "device": "testbox", "model": {"target": "cpu"},
        "cameras": [{"name": "door", "fps": 10, "reopen_backoff": 0.2,
                     "source": f"http://127.0.0.1:{camera.port}/clip.avi"}],
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "stats_interval": 1.0},
        "health": {"port": health, "camera_grace": 3.0}}))
    log = open(tmp_path / "daemon.log", "w")  # a pipe nobody reads would fill and block it
    proc = subprocess.Popen([sys.executable, "-m", "motivnet_edge", "run", "--config",
                             str(config)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_status(health, 200)
        found = frames_seen(health, "door")
        assert any(s.labels["stage"] for s in found["motivnet_stage_latency_seconds"].samples)
        info = found["motivnet_model_info"].samples[0].labels
        assert info["target"] == "cpu" and info["model"].startswith("student-int8")
        assert found["motivnet_broker_connected"].samples[0].value == 1.0

        camera.stop()
        broker.stop()
        body = wait_status(health, 503)
        assert "camera door: no frame for" in body, body
        assert metrics(health)["motivnet_broker_connected"].samples[0].value == 0.0

        camera.start()
        broker.start()
        assert wait_status(health, 200) == "ok\n"
        assert get(health, "/nothing")[0] == 404
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
