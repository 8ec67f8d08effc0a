"""End-to-end daemon benchmark on this machine, as a device would run it (no torch): a 640x480
video with 1-3 faces, each artifact and engine in turn, with the Haar cascade and, when a YuNet
file is given, YuNet, measured in one run. Prints frames per second, per-stage latency p50/p95,
peak RSS and the time from start to the first published result.

    python -m motivnet_edge.benchmarks.bench_e2e --artifacts out/demo [--frames 300] \\
        [--detector face_detection_yunet.onnx] [--photos faces/] [--python device-venv/bin/python]

``--python`` runs the daemon with the interpreter of a device install (``pip install
motivnet-edge[onnx]``, no torch); by default this interpreter runs it with torch blocked.
``--photos`` pastes real face photos into the video instead of synthetic faces.
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

import cv2
import yaml

from motivnet_edge.benchmarks.demo_daemon import local_broker, subscribe, write_video
from motivnet_edge.benchmarks.no_torch import BLOCK_TORCH
from motivnet_edge.targets.formats import artifact_name

DAEMON = BLOCK_TORCH + "from motivnet_edge.edge.cli import main\nsys.exit(main(sys.argv[1:]))\n"

# (target profile, engine override, artifact)
CASES = [("cpu", None, artifact_name("student", "int8", "onnx")),
         ("intel-cpu", None, artifact_name("student", "int8", "openvino")),
         ("rpi", None, artifact_name("student", "int8", "tflite")),
         ("cpu", None, artifact_name("student", "fp32", "onnx"))]


def peak_rss_mb(proc: subprocess.Popen, peak: list[float]) -> None:
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.05)


def run_case(python: str, artifact: Path, target: str, engine: str | None,
             detector: Path | None, video: Path, frames: int, host: str, port: int,
             work: Path, haar_scale: float | None = None) -> dict:
    first: list[float] = []
    stats: list[dict] = []
    device = f"bench-{artifact.name.replace('.', '-')}-{'yunet' if detector else 'haar'}"

    def on_message(m) -> None:
        if m.topic.endswith("/faces") and not first:
            first.append(time.monotonic())
        elif m.topic.endswith("/stats"):
            stats.append(json.loads(m.payload))
    sub = subscribe(host, port, f"motivnet/{device}/#", on_message)
    cfg = {"device": device, "model": {"artifact": str(artifact.resolve()), "target": target,
                                       "engine": engine, "threads": 2},
           "detector": {"model": str(detector.resolve()) if detector else None,
                        **({"scale_factor": haar_scale} if haar_scale else {})},
           "cameras": [{"name": "cam0", "source": str(video)}],
           "mqtt": {"host": host, "port": port, "stats_interval": 1000.0}}
    path = work / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    peak = [0.0]
    t0 = time.monotonic()
    argv = ([python, "-c", DAEMON] if python == sys.executable
            else [python, "-m", "motivnet_edge.edge.cli"])
    proc = subprocess.Popen([*argv, "run", "--config", str(path), "--max-frames", str(frames)],
                            stderr=subprocess.PIPE, text=True, cwd=work)
    threading.Thread(target=peak_rss_mb, args=(proc, peak), daemon=True).start()
    _, err = proc.communicate(timeout=600)
    time.sleep(0.5)
    sub.loop_stop()
    if proc.returncode != 0:
        raise SystemExit(f"{artifact.name}: daemon failed\n{err[-2000:]}")
    final = stats[-1] if stats else {}
    return {"artifact": artifact.name, "target": target,
            "detector": "yunet" if detector else f"haar{haar_scale or ''}", "fps": final.get("fps"),
            "latency": final.get("latency_ms", {}), "rss_mb": round(peak[0], 1),
            "first_result_s": round(first[0] - t0, 2) if first else None}


def print_table(rows: list[dict]) -> None:
    def pp(lat: dict, stage: str) -> str:
        s = lat.get(stage, {})
        return f"{s.get('p50', 0):.2f}/{s.get('p95', 0):.2f}"

    print(f"{'artifact':<22}{'target':<11}{'detector':<9}{'fps':>6}{'detect p50/p95':>16}"
          f"{'infer p50/p95':>15}{'total p50/p95':>16}{'RSS MB':>8}{'first s':>8}")
    for r in rows:
        lat = r["latency"]
        print(f"{r['artifact']:<22}{r['target']:<11}{r['detector']:<9}{r['fps'] or 0:>6.1f}"
              f"{pp(lat, 'detect'):>16}{pp(lat, 'infer'):>15}{pp(lat, 'total'):>16}"
              f"{r['rss_mb']:>8.1f}{r['first_result_s'] or float('nan'):>8.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifacts", type=Path, default=Path("out/demo"))
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--detector", type=Path, help="YuNet .onnx, measured beside Haar")
    ap.add_argument("--haar-scale", type=float, help="the Haar cascade's scale_factor")
    ap.add_argument("--photos", type=Path, help="folder of face photos to paste into the video")
    ap.add_argument("--python", default=sys.executable, help="a device install's interpreter")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    host = "127.0.0.1"
    port = local_broker(host)
    photos = None
    if args.photos:
        photos = [img for p in sorted(args.photos.iterdir())[:200]
                  if (img := cv2.imread(str(p))) is not None]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        video = Path(d) / "faces.avi"
        write_video(video, seconds=max(args.frames / 15, 4), photos=photos)
        for detector in [None, args.detector] if args.detector else [None]:
            for target, engine, name in CASES:
                if (args.artifacts / name).is_file():
                    rows.append(run_case(args.python, args.artifacts / name, target, engine,
                                         detector, video, args.frames, host, port, Path(d),
                                         args.haar_scale))
                    print(json.dumps(rows[-1]), flush=True)
    print()
    print_table(rows)
    print(f"\n{args.frames} frames of a 640x480 video of {'photo' if photos else 'synthetic'} "
          f"faces; fps counts processed frames (a file is paced: no frame skipped); RSS is "
          f"the daemon's peak, run by {args.python}"
          + (" with torch blocked" if args.python == sys.executable else ""))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
