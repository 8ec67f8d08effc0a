"""Orders over MQTT against a real broker: a camera paused and resumed (its source really
released, no frame read meanwhile), the state kept across a restart, a snapshot on request,
and bad orders logged and ignored."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from motivnet_edge.edge.config import load_config
from motivnet_edge.edge.daemon import Daemon
from tests.helpers import Subscriber, onnx_artifact, synthetic_video

BASE = "motivnet/ctl"


def config(tmp_path, port: int, snapshots: bool = True):
    video = synthetic_video(tmp_path / "v.avi", 10)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({
        "device": "ctl", "state_dir": str(state),
        "model": {"artifact": str(onnx_artifact(tmp_path)), "target": "cpu"},
        "pipeline": {"snapshots": snapshots},
        "cameras": [{"name": "door", "source": str(video), "loop": True, "fps": 20}],
        "mqtt": {"host": "127.0.0.1", "port": port, "stats_interval": 60}}))
    return load_config(path)


def order(port: int, camera: str, what: str, payload: str | bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(f"{BASE}/{camera}/{what}/set", payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def started(cfg) -> tuple[Daemon, threading.Thread]:
    """A daemon running in a thread; its exit code lands in ``daemon.exit_code``."""
    daemon = Daemon(cfg)

    def run() -> None:
        daemon.exit_code = daemon.run()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return daemon, thread


def wait(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def frames(daemon: Daemon) -> int:
    return daemon.counts["door"][0]


@pytest.mark.slow
def test_pause_resume_snapshot_and_the_state_across_a_restart(tmp_path, broker, caplog):
    cfg = config(tmp_path, broker.port)
    sub = Subscriber(broker.port, BASE)
    daemon, thread = started(cfg)
    wait(lambda: frames(daemon) > 5)
    caplog.set_level("WARNING")
    order(broker.port, "door", "detect", "MAYBE")  # not ON or OFF
    order(broker.port, "door", "detect", b"\xff\xfe{")  # not even text
    order(broker.port, "door", "detect", "OFF")
    wait(lambda: "door" in daemon.controls.paused)
    source = daemon.sources[0]
    wait(lambda: not source._thread.is_alive())  # the source released
    held, read = frames(daemon), source.frames_read
    time.sleep(1.0)
    assert frames(daemon) == held and source.frames_read == read
    assert sub.wait_for(f"{BASE}/door/detect", 2)[-1] == b"OFF"
    assert any(json.loads(p)["status"] == "paused" for p in sub.on("/door/status"))
    order(broker.port, "door", "detect", "on")  # any case
    wait(lambda: frames(daemon) > held + 5)
    assert sub.on(f"{BASE}/door/detect")[-1] == b"ON"
    order(broker.port, "door", "snapshot", "PRESS")
    image = sub.wait_for(f"{BASE}/door/image", 1)
    assert len(image) == 1 and image[0][:2] == b"\xff\xd8"  # one JPEG
    assert "payload 'MAYBE' is not one of ON, OFF" in caplog.text
    assert caplog.text.count("ignored an order") == 2 and thread.is_alive()
    order(broker.port, "door", "detect", "OFF")
    wait(lambda: "door" in daemon.controls.paused)
    daemon.stop()
    thread.join(20)
    # a restart from the same state_dir keeps the camera paused
    again, thread = started(cfg)
    assert again.controls.paused == {"door"}
    time.sleep(1.0)
    assert frames(again) == 0 and not again.sources[0]._thread.is_alive()
    order(broker.port, "door", "detect", "ON")
    wait(lambda: frames(again) > 0)
    again.stop()
    thread.join(20)
    assert again.exit_code == 0
    # paused again, then a daemon stopped before its paused camera was ever opened exits 0
    third, thread = started(cfg)
    wait(lambda: frames(third) > 0)
    third.controls.receive(f"{BASE}/door/detect/set", b"OFF")  # as if it came over MQTT
    wait(lambda: "door" in third.controls.paused)
    third.stop()
    thread.join(20)
    assert third.exit_code == 0 and not thread.is_alive()
    fourth, thread = started(cfg)  # its camera paused from the start, never opened
    assert fourth.controls.paused == {"door"}
    time.sleep(0.5)
    fourth.stop()
    thread.join(20)
    assert fourth.exit_code == 0 and fourth.sources[0].frames_read == 0
    sub.close()


@pytest.mark.slow
def test_without_images_allowed_a_snapshot_order_is_refused(tmp_path, broker, caplog):
    cfg = config(tmp_path, broker.port, snapshots=False)
    sub = Subscriber(broker.port, BASE)
    daemon, thread = started(cfg)
    wait(lambda: frames(daemon) > 3)
    assert not any(t.endswith("snapshot/set") for t in daemon.controls.topics())
    caplog.set_level("WARNING")
    daemon.controls.receive(f"{BASE}/door/snapshot/set", b"PRESS")  # as if it came
    time.sleep(0.5)
    daemon.stop()
    thread.join(20)
    assert "images are not allowed" in caplog.text and not sub.on("/door/image")
    sub.close()
