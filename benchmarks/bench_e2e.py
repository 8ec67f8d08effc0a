"""End-to-end daemon benchmark on this machine, as a device would run it (torch blocked):
a 640x480 video with 1-3 synthetic faces, the real detector, each engine in turn. Prints
frames per second, per-stage latency p50/p95, peak RSS and the time from start to the first
published result.

    python -m benchmarks.bench_e2e --artifacts out/demo [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml

from benchmarks.demo_daemon import local_broker, write_video

BLOCK_TORCH = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'nncf', 'litert_torch'):\n"
    "            raise ModuleNotFoundError(name + ' is not on the device')\n"
    "sys.meta_path.insert(0, _Block())\n"
    "from edge.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n")

CASES = [("cpu", None, "student-int8.onnx"), ("cpu", "openvino", "student-int8.xml"),
         ("rpi", None, "student-int8.tflite"), ("cpu", None, "student-fp32.onnx")]


def run_case(artifacts: Path, target: str, engine: str | None, artifact: str, video: Path,
             frames: int, host: str, port: int, work: Path) -> dict:
    first: list[float] = []
    stats: list[dict] = []
    device = f"bench-{artifact.replace('.', '-')}"
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"motivnet/{device}/#", qos=1)

    def on_message(c, u, m):
        if m.topic.endswith("/faces") and not first:
            first.append(time.monotonic())
        elif m.topic.endswith("/stats"):
            stats.append(json.loads(m.payload))
    sub.on_message = on_message
    sub.connect(host, port)
    sub.loop_start()
    cfg = {"device": device, "model": {"artifact": str((artifacts / artifact).resolve()),
                                       "target": target, "engine": engine, "threads": 2},
           "cameras": [{"name": "cam0", "source": str(video)}],
           "mqtt": {"host": host, "port": port, "stats_interval": 1000.0}}
    path = work / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    peak = [0.0]
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", BLOCK_TORCH, "run", "--config", str(path),
                             "--max-frames", str(frames)], stderr=subprocess.PIPE, text=True)

    def watch() -> None:
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()
    _, err = proc.communicate(timeout=600)
    time.sleep(0.5)
    sub.loop_stop()
    if proc.returncode != 0:
        raise SystemExit(f"{artifact}: daemon failed\n{err[-2000:]}")
    final = stats[-1] if stats else {}
    return {"artifact": artifact, "engine": engine or target, "fps": final.get("fps"),
            "latency": final.get("latency_ms", {}), "rss_mb": round(peak[0], 1),
            "first_result_s": round(first[0] - t0, 2) if first else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--artifacts", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    host = "127.0.0.1"
    port = local_broker(host)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "faces.avi"
        write_video(video, seconds=max(args.frames / 15, 4))
        for target, engine, artifact in CASES:
            if (args.artifacts / artifact).is_file():
                rows.append(run_case(args.artifacts, target, engine, artifact, video,
                                     args.frames, host, port, Path(d)))
    print(f"{'artifact':<22}{'engine':<12}{'fps':>7}{'detect p50/p95':>17}"
          f"{'infer p50/p95':>16}{'total p50/p95':>16}{'RSS MB':>8}{'first s':>9}")
    def pp(lat: dict, stage: str) -> str:
        s = lat.get(stage, {})
        return f"{s.get('p50', 0):.2f}/{s.get('p95', 0):.2f}"

    for r in rows:
        lat = r["latency"]
        print(f"{r['artifact']:<22}{r['engine']:<12}{r['fps'] or 0:>7.1f}{pp(lat, 'detect'):>17}"
              f"{pp(lat, 'infer'):>16}{pp(lat, 'total'):>16}{r['rss_mb']:>8.1f}"
              f"{r['first_result_s'] or float('nan'):>9.2f}")
    print("\n(fps counts processed frames, a video file paced so no frame is skipped; "
          "RSS is the peak of the daemon process with torch blocked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
