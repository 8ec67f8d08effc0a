"""A soak run: the real daemon on several cameras of recorded footage for many minutes against
a real broker that is restarted during the run; what an operator needs to trust it for months.

    python -m motivnet_edge.benchmarks.soak --minutes 10 --cameras 4 --restarts 2 \\
        --out benchmarks/results/soak

Every minute it samples the daemon's resident memory, open file descriptors and threads; at the
end it counts, per camera, the ``faces`` messages the daemon numbered (``seq``), those a QoS 1
subscriber received, the duplicates and the lost. The RSS slope (MB per hour, fitted after the
first minute's warm-up) says whether memory grows without bound. Writes ``soak.json``,
``soak.md`` (with the machine) and ``soak.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.benchmarks.host import describe, host_info
from motivnet_edge.edge.procstat import status_mb, status_value
from motivnet_edge.targets.files import write_json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on a free loopback port (amqtt in a process of its own when mosquitto is not
    installed), stoppable and restartable on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.exe = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             f"persistence true\npersistence_location {folder}/\n"
                             + ("user root\n" if os.geteuid() == 0 else ""))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [self.exe, "-c", str(self.conf)] if self.exe else [
            sys.executable, "-c", "import asyncio; from amqtt.broker import Broker; "
            f"b = Broker({{'listeners': {{'default': {{'type': 'tcp', 'bind': "
            f"'127.0.0.1:{self.port}'}}}}}}); loop = asyncio.new_event_loop(); "
            "loop.run_until_complete(b.start()); loop.run_forever()"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the broker did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None


class Counter:
    """A QoS 1 subscriber with a persistent session: every faces message by camera and seq."""

    def __init__(self, port: int, prefix: str) -> None:
        import paho.mqtt.client as mqtt

        self.seen: dict[str, list[tuple[str, int]]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-counter",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._message
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/faces"):
            data = json.loads(msg.payload)
            with self.lock:
                self.seen.setdefault(data["camera"], []).append((data["run"], data["seq"]))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def sample(pid: int) -> dict:
    """RSS (MB), open file descriptors and threads of process ``pid``."""
    return {"rss_mb": round(status_mb("VmRSS", pid) or 0.0, 1),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": status_value("Threads", pid) or 0}


def footage(folder: Path, cameras: int, frames: int = 120) -> list[Path]:
    """A short MJPG clip per camera with 1-3 synthetic faces moving a little."""
    import cv2

    from motivnet_edge.edge.data.synthetic import synth_scene

    clips = []
    for cam in range(cameras):
        rng = np.random.default_rng(cam)
        frame, _ = synth_scene(rng, [int(x) for x in rng.integers(0, 7, 1 + cam % 3)])
        path = folder / f"cam{cam}.avi"
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
        for i in range(frames):
            out.write(np.roll(frame, (i % 20) - 10, axis=1))
        out.release()
        clips.append(path)
    return clips


def delivery(counter: Counter, cameras: list[str]) -> dict:
    """Per camera: numbered (the highest seq), received (unique), duplicates, lost."""
    out = {}
    with counter.lock:
        for cam in cameras:
            got = counter.seen.get(cam, [])
            unique = set(got)
            top = max((s for _, s in unique), default=0)
            out[cam] = {"numbered": top, "received": len(unique),
                        "duplicates": len(got) - len(unique), "lost": top - len(unique)}
    return out


def slope_per_hour(samples: list[dict], key: str = "rss_mb") -> float:
    """Least-squares slope of ``key`` over time, per hour, after the first minute."""
    pts = [(s["t_min"], s[key]) for s in samples if s["t_min"] >= 1.0]
    if len(pts) < 2:
        return 0.0
    t, v = np.array(pts).T
    return float(np.polyfit(t, v, 1)[0] * 60.0)


def run(args: argparse.Namespace) -> dict:
    """The soak: the daemon run against a broker that comes and goes, its CPU, memory and spool
    sampled."""
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    broker = Broker(work)
    broker.start()
    names = [f"cam{i}" for i in range(args.cameras)]
    config = work / "config.yaml"
    import yaml

    config.write_text(yaml.safe_dump({
        "device": "soak", "state_dir": str(work / "state"),
        "model": {"target": args.target, "threads": 1},
        "cameras": [{"name": n, "source": str(p), "loop": True, "fps": args.fps}
                    for n, p in zip(names, footage(work, args.cameras), strict=True)],
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "stats_interval": 10.0,
                 "flush_timeout": 30.0, "spool": {"max_messages": 100000}}}))
    (work / "state").mkdir()
    counter = Counter(broker.port, "motivnet")
    log = open(work / "daemon.log", "w")
    daemon = subprocess.Popen([sys.executable, "-m", "motivnet_edge", "run", "--config",
                               str(config)], stdout=subprocess.DEVNULL, stderr=log)
    started = time.monotonic()
    restarts_at = [args.minutes * (i + 1) / (args.restarts + 1) for i in range(args.restarts)]
    samples, restarts = [], []
    try:
        time.sleep(5)
        samples.append({"t_min": 0.0, **sample(daemon.pid)})
        next_sample = 1.0
        while (elapsed := (time.monotonic() - started) / 60) < args.minutes:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}; see "
                                   f"{work / 'daemon.log'}")
            if restarts_at and elapsed >= restarts_at[0]:
                restarts_at.pop(0)
                broker.stop()
                time.sleep(args.outage)
                broker.start()
                restarts.append(round(elapsed, 2))
                print(f"{elapsed:5.1f} min: broker restarted after {args.outage:g} s away",
                      flush=True)
            if elapsed >= next_sample:
                samples.append({"t_min": round(elapsed, 2), **sample(daemon.pid)})
                print(f"{elapsed:5.1f} min: {samples[-1]}", flush=True)
                next_sample += 1.0
            time.sleep(1.0)
        samples.append({"t_min": round((time.monotonic() - started) / 60, 2),
                        **sample(daemon.pid)})
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(120)
        time.sleep(3)  # the last messages reach the counter
        counter.close()
        broker.stop()
        log.close()
    return {"minutes": args.minutes, "cameras": args.cameras, "fps_cap": args.fps,
            "target": args.target, "broker_restarts_at_min": restarts,
            "outage_s": args.outage, "daemon_exit": code, "samples": samples,
            "rss_slope_mb_per_h": round(slope_per_hour(samples), 2),
            "delivery": delivery(counter, names), "host": host_info()}


def markdown(res: dict) -> str:
    first, last = res["samples"][0], res["samples"][-1]
    rows = "\n".join(f"| {s['t_min']:.1f} | {s['rss_mb']:.1f} | {s['fds']} | {s['threads']} |"
                     for s in res["samples"])
    dl = "\n".join(f"| {cam} | {d['numbered']} | {d['received']} | {d['duplicates']} | "
                   f"{d['lost']} |" for cam, d in res["delivery"].items())
    restarts = ", ".join(f"{m:g}" for m in res["broker_restarts_at_min"])
    return f"""# Soak: the daemon for {res['minutes']:g} minutes, {res['cameras']} cameras

Machine: {describe(res['host'])}, {res['host'].get('os', '')}.

Command: `python -m motivnet_edge.benchmarks.soak --minutes {res['minutes']:g} --cameras \
{res['cameras']} --restarts {len(res['broker_restarts_at_min'])} --fps {res['fps_cap']:g}`

Recorded footage (synthetic faces) looped on every camera, capped at {res['fps_cap']:g} fps each;
the shipped model on target `{res['target']}` with one engine thread; a disk spool; the broker
(mosquitto) stopped for {res['outage_s']:g} s at minute(s) {restarts}. The daemon's exit
status after SIGTERM: {res['daemon_exit']}.

RSS slope after the first minute: **{res['rss_slope_mb_per_h']:+.2f} MB per hour**; open
file descriptors {first['fds']} -> {last['fds']}; threads {first['threads']} -> {last['threads']}.

| minute | RSS MB | fds | threads |
|---|---|---|---|
{rows}

| camera | faces messages numbered | received (unique) | duplicates | lost |
|---|---|---|---|---|
{dl}
"""


def plot(res: dict, path: Path) -> None:
    try:
        plt = pyplot()
    except ImportError:
        return
    t = [s["t_min"] for s in res["samples"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(t, [s["rss_mb"] for s in res["samples"]], marker="o", label="RSS (MB)")
    for m in res["broker_restarts_at_min"]:
        ax.axvline(m, color="grey", ls="--", lw=1)
    ax.set_xlabel("minutes (dashed: broker restarts)")
    ax.set_ylabel("MB")
    ax.set_title(f"daemon RSS, {res['cameras']} cameras: {res['rss_slope_mb_per_h']:+.2f} MB/h")
    fig.tight_layout()
    save(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.benchmarks.soak``: the soak run, its table and plot written."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--cameras", type=int, default=4)
    p.add_argument("--restarts", type=int, default=2, help="broker restarts during the run")
    p.add_argument("--outage", type=float, default=10.0, help="seconds the broker is away")
    p.add_argument("--fps", type=float, default=5.0, help="cap per camera")
    p.add_argument("--target", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "soak.json", res)
    (args.out / "soak.md").write_text(markdown(res))
    plot(res, args.out / "soak.png")
    print(markdown(res))
    lost = sum(d["lost"] for d in res["delivery"].values())
    return 0 if res["daemon_exit"] == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
