"""``motivnet-edge bench --e2e``: the daemon end to end on this machine, as a device runs it
(no torch): a video (your own with ``--video``, else a generated 640x480 one with 1-3 faces),
each artifact and engine in turn, with YuNet in OpenCV's DNN (the reference), YuNet in the
classifier's engine (``detector.engine: auto``) and the Haar cascade. Reads frames per second,
per-stage latency p50/p95, CPU time per frame, the share of the frame spent detecting and RSS
from the daemon's own stats, and times the first result.

``--python`` runs the daemon with the interpreter of a device install (``pip install
motivnet-edge[onnx]``, no torch); by default this interpreter runs it with torch blocked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from motivnet_edge.benchmarks.no_torch import BLOCK_TORCH
from motivnet_edge.edge.demo import (
    clear_retained,
    local_broker,
    subscribe,
    write_video,
)
from motivnet_edge.edge.procstat import status_mb
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import artifact_name

DAEMON = BLOCK_TORCH + "from motivnet_edge.cli import main\nsys.exit(main(sys.argv[1:]))\n"

# (target profile, engine override, artifact)
CASES = [("cpu", None, artifact_name("student", "int8", "onnx")),
         ("intel-cpu", None, artifact_name("student", "int8", "openvino")),
         ("rpi", None, artifact_name("student", "int8", "tflite")),
         ("cpu", None, artifact_name("student", "fp32", "onnx"))]


def peak_rss_mb(proc: subprocess.Popen, peak: list[float]) -> None:
    while proc.poll() is None:
        peak[0] = max(peak[0], status_mb("VmRSS", proc.pid) or 0.0)
        time.sleep(0.05)


# (kind, engine, every, overlap) of the face detector: YuNet in OpenCV's DNN one frame at a
# time (the reference, as before issue 30), YuNet in the classifier's engine one frame at a
# time, then overlapped with classification (edge/frames.py) on every frame and on every
# third, the Haar cascade
DETECTORS = (("yunet", "opencv", 1, False), ("yunet", "auto", 1, False),
             ("yunet", "auto", 1, True), ("yunet", "auto", 3, True),
             ("haar", "opencv", 1, False))


def _config(device: str, artifact: Path, target: str, engine: str | None,
            detector: tuple[str, str, int, bool], video: Path, host: str, port: int,
            haar_scale: float | None, threads: int) -> dict:
    """The daemon's config for one case (``threads`` for the classifier and the detector)."""
    kind, det_engine, every, overlap = detector
    return {"device": device, "model": {"artifact": str(artifact.resolve()), "target": target,
                                        "engine": engine, "threads": threads},
            "detector": {"kind": kind, "engine": det_engine, "every": every, "threads": threads,
                         **({"scale_factor": haar_scale} if haar_scale and kind == "haar"
                            else {})},
            # Haar gives no landmarks: an aligned artifact gets square box crops (counted)
            "pipeline": {"overlap": overlap, "box_crop_fallback": kind == "haar"},
            "cameras": [{"name": "cam0", "source": str(Path(video).resolve())}],
            "mqtt": {"host": host, "port": port, "stats_interval": 1000.0,
                     "prefix": "motivnet-bench"}}


def run_case(python: str, artifact: Path, target: str, engine: str | None,
             detector: tuple[str, str, int, bool], video: Path, frames: int, host: str,
             port: int, work: Path, haar_scale: float | None = None, threads: int = 1) -> dict:
    """One end-to-end case: the daemon on the video with this target and engine, its per-stage
    times read from its status."""
    first: list[float] = []
    stats: list[dict] = []
    faces: list[int] = []  # faces per published frame
    labels: dict[int, list[str]] = {}  # frame -> the labels published for it
    kind, det_engine, every, overlap = detector
    device = f"bench-{artifact.name.replace('.', '-')}-{kind}-{det_engine}-{every}-{overlap:d}"

    def on_message(m) -> None:
        if m.topic.endswith("/faces"):
            if not first:
                first.append(time.monotonic())
            msg = json.loads(m.payload)
            faces.append(len(msg.get("faces", [])))
            labels[msg.get("frame", len(labels))] = sorted(f["label"] for f in msg["faces"])
        elif m.topic.endswith("/stats"):
            stats.append(json.loads(m.payload))
    sub = subscribe(host, port, f"motivnet-bench/{device}/#", on_message)
    cfg = _config(device, artifact, target, engine, detector, video, host, port, haar_scale,
                  threads)
    path = work / f"{device}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    peak = [0.0]
    t0 = time.monotonic()
    argv = ([python, "-c", DAEMON] if python == sys.executable
            else [python, "-m", "motivnet_edge.cli"])
    proc = subprocess.Popen([*argv, "run", "--config", str(path), "--max-frames", str(frames)],
                            stderr=subprocess.PIPE, text=True, cwd=work)
    threading.Thread(target=peak_rss_mb, args=(proc, peak), daemon=True).start()
    _, err = proc.communicate(timeout=600)
    time.sleep(0.5)
    sub.loop_stop()
    clear_retained(host, port, {f"motivnet-bench/{device}/availability",
                                f"motivnet-bench/{device}/cam0/status",
                                f"motivnet-bench/{device}/cam0/emotion"})
    ran = re.search(r"face detector: \w+ in (\w+)", err)
    name = f"{kind}/{ran.group(1) if ran else det_engine}" + \
        (f" every {every}" if every > 1 else "") + (" overlap" if overlap else "") + \
        (f" {haar_scale}" if haar_scale and kind == "haar" else "")
    if proc.returncode != 0:
        return {"artifact": artifact.name, "target": target, "detector": name,
                "status": f"failed: {err.strip().splitlines()[-1] if err.strip() else '?'}"}
    final = stats[-1] if stats else {}
    return {"artifact": artifact.name, "target": target, "status": "ok", "detector": name,
            "fps": final.get("fps"), "cpu_ms_per_frame": final.get("cpu_ms_per_frame"),
            "detect_share": final.get("detect_share"),
            "latency": final.get("latency_ms", {}), "rss_mb": round(peak[0], 1),
            "labels": labels,
            "frames_with_faces": sum(n > 0 for n in faces), "faces": sum(faces),
            "first_result_s": round(first[0] - t0, 2) if first else None}


def run_e2e(args) -> list[dict]:
    """``bench --e2e``: the real daemon on a video (``--video``, else generated 640x480 with
    1-3 faces) against a local broker, for each artifact and detector (YuNet, the Haar
    cascade): fps, per-stage latency, peak RSS and the time to the first result."""
    host = "127.0.0.1"
    port = local_broker(host)
    python = args.python or sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as d:
        video = args.video
        if video is None:
            video = Path(d) / "faces.avi"
            write_video(video, seconds=max(args.frames / 15, 4))
        elif not Path(video).exists():
            raise MotivnetError(f"--video {video} does not exist (a video file or a folder "
                                f"of photos)")
        for target, engine, name in CASES:
            if not (args.artifacts / name).is_file():
                continue
            group = [run_case(python, args.artifacts / name, target, engine, detector,
                              Path(video), args.frames, host, port, Path(d), args.haar_scale,
                              args.threads)
                     for detector in DETECTORS]
            rows += same_labels(group)
            for row in group:
                print(json.dumps(row), file=sys.stderr, flush=True)
    print_table(rows)
    print(f"{args.frames} frames of {'your video' if args.video else 'a generated video'}, "
          f"{args.threads} thread(s) per engine; "
          f"fps counts processed frames (a file is paced: no frame skipped); RSS is the "
          f"daemon's peak under {python}" + (" with torch blocked" if python == sys.executable
                                             else ""))
    return rows


def same_labels(group: list[dict]) -> list[dict]:
    """Each case's published labels against the first case's (YuNet in OpenCV on every frame):
    the share of frames published by either where both gave the same labels."""
    reference = group[0].get("labels", {})
    for row in group:
        mine = row.pop("labels", {})
        frames = set(reference) | set(mine)
        if row["status"] == "ok":
            row["same_labels"] = round(sum(reference.get(f) == mine.get(f) for f in frames)
                                       / len(frames), 4) if frames else 1.0
    return group


def print_table(rows: list[dict]) -> None:
    def pp(lat: dict, stage: str) -> str:
        s = lat.get(stage, {})
        return f"{s.get('p50', 0):.2f}/{s.get('p95', 0):.2f}"

    def num(value, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    print(f"{'artifact':<22}{'target':<11}{'detector':<36}{'fps':>6}{'CPU ms/frame':>13}"
          f"{'frames/CPU s':>13}{'detect share':>13}{'detect p50/p95':>16}"
          f"{'infer p50/p95':>15}{'total p50/p95':>16}{'RSS MB':>8}{'first s':>8}"
          f"{'frames with faces':>19}{'same labels':>13}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['artifact']:<22}{r['target']:<11}{r['detector']:<36}  {r['status']}")
            continue
        lat, cpu = r["latency"], r.get("cpu_ms_per_frame")
        print(f"{r['artifact']:<22}{r['target']:<11}{r['detector']:<36}{r['fps'] or 0:>6.1f}"
              f"{num(cpu, '.2f'):>13}{num(1000 / cpu if cpu else None, '.1f'):>13}"
              f"{num(r.get('detect_share'), '.0%'):>13}"
              f"{pp(lat, 'detect'):>16}{pp(lat, 'infer'):>15}{pp(lat, 'total'):>16}"
              f"{r['rss_mb']:>8.1f}{r['first_result_s'] or float('nan'):>8.2f}"
              f"{r['frames_with_faces']:>19}{num(r.get('same_labels'), '.1%'):>13}")
