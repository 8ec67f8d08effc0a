"""The last step of `make demo`: run the daemon for a few seconds on a generated video of
synthetic faces against the broker on localhost (or, when none answers, an in-process amqtt
broker), print what arrived, and clear the retained messages it left (availability, camera
status, emotion), so the user's broker is as it was."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import yaml

from motivnet_edge.edge.data.synthetic import synth_scene

PREFIX = "motivnet-demo"  # the demo's own topics, cleared when it ends


def broker_answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def start_amqtt(port: int) -> None:
    import asyncio

    from amqtt.broker import Broker

    def serve() -> None:
        loop = asyncio.new_event_loop()
        broker = Broker({"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}},
                        loop=loop)
        loop.run_until_complete(broker.start())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    for _ in range(100):
        if broker_answers("127.0.0.1", port):
            return
        time.sleep(0.05)


def local_broker(host: str = "127.0.0.1", port: int = 1883) -> int:
    """The port of the broker on ``host``: ``port`` when one answers there, else a free port
    with an in-process amqtt broker started on it."""
    if broker_answers(host, port):
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        free = s.getsockname()[1]
    print(f"no broker on {host}:{port}; starting an in-process amqtt broker on {free}")
    start_amqtt(free)
    return free


def subscribe(host: str, port: int, pattern: str, on_message) -> mqtt.Client:
    """A started client that hands every message under ``pattern`` (QoS 1) to ``on_message``."""
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(pattern, qos=1)
    sub.on_message = lambda c, u, m: on_message(m)
    sub.connect(host, port)
    sub.loop_start()
    return sub


def photo_scene(rng: np.random.Generator, photos: list[np.ndarray], n: int) -> np.ndarray:
    """A 640x480 frame with ``n`` face photos pasted side by side on a noisy background."""
    frame = (rng.integers(60, 200, (1, 1, 3)) + rng.normal(0, 12, (480, 640, 3))).clip(0, 255)
    frame = frame.astype(np.uint8)
    width = 640 // n
    for k in range(n):
        side = int(rng.integers(100, min(220, width)))
        x = k * width + int(rng.integers(0, width - side + 1))
        y = int(rng.integers(0, 480 - side))
        photo = photos[int(rng.integers(len(photos)))]
        frame[y:y + side, x:x + side] = cv2.resize(photo, (side, side))
    return frame


def write_video(path: Path, seconds: float = 6, fps: int = 15,
                photos: list[np.ndarray] | None = None) -> None:
    """Three scenes of 1, 2 and 3 faces in turn, a second each, moving a little: synthetic
    faces, or face ``photos`` pasted on a background."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    scenes = [photo_scene(rng, photos, n) if photos else
              synth_scene(rng, [int(x) for x in rng.integers(0, 7, n)])[0] for n in (1, 2, 3)]
    for i in range(int(seconds * fps)):
        writer.write(np.roll(scenes[(i // fps) % 3], i % 7, axis=1))
    writer.release()


def clear_retained(host: str, port: int, topics: set[str]) -> None:
    """An empty retained message deletes a topic's retained one (MQTT 3.1.1, 3.3.1.3)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    for topic in sorted(topics):
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    """The demo's daemon step: the daemon on a generated video over MQTT, the results it published
    printed."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", type=Path, default=Path("out/demo"))
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--port", type=int, default=1883, help="the local broker's port")
    args = ap.parse_args(argv)
    host = "127.0.0.1"
    port = local_broker(host, args.port)
    arrived: list[tuple[str, bytes]] = []
    sub = subscribe(host, port, f"{PREFIX}/#", lambda m: arrived.append((m.topic, m.payload)))
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "faces.avi"
        write_video(video, args.seconds)
        cfg = {"device": "demo", "model": {"artifact": str(args.artifacts.resolve()),
                                           "target": "auto"},
               "cameras": [{"name": "cam0", "source": str(video)}],
               "mqtt": {"host": host, "port": port, "stats_interval": 2.0, "prefix": PREFIX}}
        (Path(d) / "config.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "motivnet_edge.cli", "run", "--config",
                              str(Path(d) / "config.yaml"),
                              "--max-frames", str(int(args.seconds * 15))], text=True,
                             capture_output=True, timeout=300)
        took = time.monotonic() - t0
    time.sleep(1.0)
    sub.loop_stop()
    clear_retained(host, port, {t for t, _ in arrived})
    if res.returncode != 0:
        print(res.stderr[-3000:], file=sys.stderr)
        return res.returncode
    faces = [json.loads(p) for t, p in arrived if t.endswith("/faces")]
    print(f"\ndaemon ran {took:.1f} s; {len(faces)} 'faces' messages arrived on "
          f"{PREFIX}/demo/cam0/faces (seq {faces[0]['seq']}..{faces[-1]['seq']})"
          if faces else "no faces arrived")
    for m in faces[:: max(1, len(faces) // 5)]:
        labels = ", ".join(f"track {f['track']}: {f['label']} {f['score']:.2f}"
                           for f in m["faces"])
        print(f"  seq {m['seq']:>3} frame {m['frame']:>3}: {labels}")
    for t, p in arrived:
        if t.endswith("/stats"):
            last_stats = json.loads(p)
    if any(t.endswith("/stats") for t, _ in arrived):
        print(f"stats: {last_stats['fps']} fps, latency {last_stats['latency_ms']}, "
              f"RSS {last_stats['rss_mb']} MB, target {last_stats['target']}")
    avail = [p.decode() for t, p in arrived if t.endswith("/availability")]
    print(f"availability: {' -> '.join(avail)}; the demo's retained messages under "
          f"{PREFIX}/ were cleared")
    return 0 if faces else 1


if __name__ == "__main__":
    sys.exit(main())
