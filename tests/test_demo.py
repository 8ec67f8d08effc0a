"""The demo's last step leaves the user's broker as it found it, and bad compress arguments are
caught before any training."""

import os
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest

from motivnet_edge.cli import main
from tests.helpers import onnx_artifact


def retained(port: int, wait: float = 1.5) -> list[tuple[str, bytes]]:
    """Every retained message on the broker: a new subscriber to # gets them at once."""
    got = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload)) if m.retain else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(wait)
    client.loop_stop()
    client.disconnect()
    return got


@pytest.mark.slow
def test_demo_daemon_clears_the_retained_messages_it_left(tmp_path, broker, capsys):
    from motivnet_edge.edge.demo import PREFIX, main

    assert main(["--artifacts", str(onnx_artifact(tmp_path)), "--seconds", "2",
                 "--port", str(broker.port)]) == 0
    out = capsys.readouterr().out
    assert "'faces' messages arrived" in out and "cleared" in out
    assert [t for t, _ in retained(broker.port) if t.startswith(PREFIX)] == []


def test_bad_compress_argument_is_refused_before_the_demo_teacher_trains(tmp_path):
    """With the built-in teacher and an empty cache, the demo teacher would train for minutes
    before reading --data; the arguments are checked first, and nothing is created."""
    env = {**os.environ, "MOTIVNET_CACHE": str(tmp_path / "cache")}
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "compress", "--out",
                          str(tmp_path / "out"), "--data", "/nonexistent/photos"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 2 and "/nonexistent/photos does not exist" in res.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("flag, value", [("--augment", "5"), ("--mixup", "1.5"),
                                         ("--mixup", "-0.1"), ("--cutmix", "2")])
def test_out_of_range_training_settings_are_named_and_nothing_is_created(tmp_path, capsys,
                                                                         flag, value):
    out = tmp_path / "out"
    code = main(["distil", "--out", str(out), flag, value])
    assert code != 0
    assert f"{flag} {float(value)}" in capsys.readouterr().err
    assert not out.exists()
