"""``motivnet-edge bench``: every target against the full model, accuracy and latency in one
table; ``motivnet-edge bench collect`` gathers every device's table from a broker.

    motivnet-edge bench --artifacts out/run --labelled faces-dev/labels.csv \\
        [--full-model motivnet-1b --speed-only] [--baseline fer.onnx --baseline-spec SPEC] \\
        [--out DIR] [--gate min_agreement=0.99,max_p50_ms=2] [--publish mqtt://host]
    motivnet-edge bench collect --broker mqtt://host --out DIR

Every row sees the same faces, found and cut by the device's own detector and crop function.
Rows that cannot run here say why and the run goes on. Writes results.json, results.csv,
results.md (sorted by latency, the full model first) and pareto.png to --out.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks import report
from motivnet_edge.benchmarks.host import describe, host_info, native_bf16
from motivnet_edge.benchmarks.measure import time_runners
from motivnet_edge.benchmarks.rows import Row, artifact_rows, classifier_row, recorded_teacher
from motivnet_edge.targets.classifier_spec import load_spec
from motivnet_edge.targets.engine import ENGINES, kl_divergence
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import SUFFIXES
from motivnet_edge.targets.labels import AFFECTNET7

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge bench`` (and ``bench collect``)."""
    p.add_argument("action", nargs="?", default="run", choices=("run", "collect"),
                   help="run (default): measure this host; collect: gather every device's "
                        "published results from a broker")
    p.add_argument("--artifacts", type=Path, help="a compress output folder (default: the "
                   "emotion model shipped in the package)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--labelled", type=Path, help="labelled photos: a CSV of image,emotion "
                      "or class folders (accuracy, macro and per-class recall)")
    data.add_argument("--data", type=Path, help="photos or videos without labels")
    p.add_argument("--teacher", type=Path, help="the full model's file, when the artifacts' "
                   "record of it does not point to one here")
    p.add_argument("--teacher-spec", help="its classifier spec (an exported teacher)")
    p.add_argument("--teacher-engine", choices=sorted(ENGINES),
                   help="the engine an exported teacher runs in (default: the one the "
                        "artifacts' record names, the teacher the student learnt from; else "
                        "its format's)")
    p.add_argument("--full-model", help="time MotivNet itself: a size (motivnet-1b)")
    p.add_argument("--checkpoint", type=Path, help="the full model's weights (MotivNet.pth)")
    p.add_argument("--speed-only", action="store_true",
                   help="random weights: time the full model's real architecture only")
    p.add_argument("--baseline", type=Path, action="append", default=[],
                   help="another exported classifier to compare with (repeatable)")
    p.add_argument("--baseline-spec", action="append", default=[],
                   help="its classifier spec, one per --baseline")
    p.add_argument("--out", type=Path, default=Path("out/bench"), help="results folder")
    p.add_argument("--threads", type=int, default=1, help="threads per engine (fixed)")
    p.add_argument("--rounds", type=int, default=10, help="timing rounds (interleaved)")
    p.add_argument("--per-round", type=int, default=10, help="timed runs per round")
    p.add_argument("--full-model-runs", type=int, default=3,
                   help="timed runs of a full model that takes seconds per image")
    p.add_argument("--limit", type=int, help="use at most this many faces")
    p.add_argument("--no-rss", action="store_true", help="skip peak-RSS subprocesses")
    p.add_argument("--gate", help="exit 1 when a row falls short, e.g. "
                                  "min_agreement=0.99,max_p50_ms=2,min_top1=0.5")
    p.add_argument("--device-name", help="this device's name in published results "
                                         "(default: the hostname)")
    p.add_argument("--publish", help="send the results, retained, to mqtt://host[:port]")
    p.add_argument("--broker", help="collect: the broker, mqtt://host[:port]")
    p.add_argument("--mqtt-config", type=Path, help="a daemon config whose mqtt section "
                   "(prefix, username, password file, TLS) the publisher and collector use")
    p.add_argument("--wait", type=float, default=3.0, help="collect: seconds to listen")
    p.add_argument("--detectors", action="store_true", help="also run the face detector in "
                   "every engine that runs it here against OpenCV's YuNet on the faces' photos "
                   "(and --video's frames): the detector gate and ms per frame")
    p.add_argument("--e2e", action="store_true", help="also run the daemon end to end on a "
                   "video against a local broker: fps, per-stage latency, RSS, first result")
    p.add_argument("--video", type=Path, help="--e2e: your own footage, a video file or a "
                   "folder of photos (default: generated)")
    p.add_argument("--frames", type=int, default=300, help="--e2e: frames to process")
    p.add_argument("--haar-scale", type=float, help="--e2e: the Haar cascade's scale_factor")
    p.add_argument("--python", help="--e2e: a device install's interpreter")
    p.add_argument("--device-python", help="also run every artifact in this interpreter (a "
                   "device install's python, e.g. /opt/motivnet-edge/current/venv/bin/python) "
                   "and compare with this host's run; its times are marked when emulated")
    p.add_argument("--device-root", type=Path, help="with --device-python: the root file "
                   "system it runs in (chroot), e.g. an emulated arm64 Debian")


def faces_for(args: argparse.Namespace) -> tuple[list, np.ndarray | None, str]:
    """The faces every row sees, their labels (or None) and where they came from."""
    from motivnet_edge.compress.distil.data import CropSet, collect, split_index
    from motivnet_edge.compress.runfolder import RunFolder
    from motivnet_edge.targets.labels import AFFECTNET8

    if args.labelled:
        faces = collect(labelled=args.labelled, classes=AFFECTNET8, progress=True)
        return faces.crops, np.asarray(faces.labels), str(args.labelled)
    if args.data:
        return collect([args.data], progress=True).crops, None, str(args.data)
    folder = RunFolder(args.artifacts) if args.artifacts else None
    if folder is not None and folder.record.is_file():
        run = folder.read_record()
        crops = CropSet.load(folder.faces(bool(run.calibration_data))[0])
        _, val = split_index(crops.hashes, run.val_fraction)
        labels = np.asarray(crops.labels)[val]
        return [crops.crops[i] for i in val], (labels if labels.min() >= 0 else None), \
            f"{len(val)} held-out faces of {args.artifacts}"
    faces = collect(synthetic=120, progress=False)
    return faces.crops, np.asarray(faces.labels), "120 synthetic faces (plumbing only)"


def detector_rows(faces: list, args: argparse.Namespace) -> list[dict]:
    """``--detectors``: every YuNet engine against OpenCV's on the faces' photos set into
    camera frames and up to ``--frames`` frames of ``--video``."""
    from motivnet_edge.benchmarks import detectors
    from motivnet_edge.edge.data import scenes

    frames = scenes.camera_frames([f.image for f in faces])
    if args.video is not None:
        frames += scenes.video_frames(args.video, args.frames)
    log.info("face detector: every engine on %d frames", len(frames))
    return detectors.measure(frames, args.threads)


def full_model_rows(args: argparse.Namespace, info: dict) -> list[Row]:
    """The teacher the artifacts came from (or given), and MotivNet itself when asked."""
    from motivnet_edge.benchmarks.full_model import motivnet_rows

    rows: list[Row] = []
    path, record = (args.teacher, {}) if args.teacher else \
        recorded_teacher(args.artifacts) if args.artifacts else (None, {})
    identity = record.get("identity", {})
    if path is not None:
        try:
            if path.suffix.lower() in SUFFIXES:
                spec = load_spec(args.teacher_spec) if args.teacher_spec else \
                    _spec_from_record(record, path)
                rows.append(classifier_row(path, spec, f"teacher ({path.name})", "teacher",
                                           args.threads,
                                           args.teacher_engine or identity.get("engine")))
            else:
                rows += motivnet_rows(identity.get("model", "motivnet-1b"), path,
                                      native_bf16(info), args.threads,
                                      f"teacher ({path.name})", "teacher")
        except (MotivnetError, ImportError) as exc:
            rows.append(Row(f"teacher ({path.name})", "teacher", "?", "cpu", "?",
                            path.name).fail(str(exc)))
    elif record:
        rows.append(Row(f"teacher ({identity.get('file', '?')})", "teacher", "?", "cpu", "?")
                    .fail("its file is not on this host: give --teacher"))
    if args.full_model:
        try:
            rows += motivnet_rows(args.full_model, None if args.speed_only else args.checkpoint,
                                  native_bf16(info), args.threads)
        except ImportError as exc:
            rows.append(Row(args.full_model, "full-model", "torch", "cpu", "fp32")
                        .fail(f"needs {exc.name}: pip install 'motivnet-edge[compress]'"))
    return rows


def _spec_from_record(record: dict, path: Path):
    from motivnet_edge.targets.classifier_spec import ClassifierSpec

    if not record.get("spec"):
        raise MotivnetError(f"no spec recorded for {path}: give --teacher-spec")
    return ClassifierSpec.from_dict(record["spec"])


def baseline_rows(args: argparse.Namespace) -> list[Row]:
    if len(args.baseline_spec) != len(args.baseline):
        raise MotivnetError("give one --baseline-spec per --baseline")
    rows = []
    for path, spec in zip(args.baseline, args.baseline_spec, strict=True):
        # a row is the file and its spec: one model compared under two preprocessings is two
        name = f"baseline ({path.name}, spec {Path(spec).name})"
        try:
            rows.append(classifier_row(path, load_spec(spec), name, "baseline", args.threads))
        except MotivnetError as exc:
            rows.append(Row(name, "baseline", "?", "cpu", "?", path.name).fail(str(exc)))
    return rows


def open_rows(rows: list[Row]) -> None:
    for row in rows:
        if row.runner is None:
            continue
        try:
            row.runner.open()
            row.results["load_s"] = round(row.runner.load_s, 3)
            row.results["settings"] = {k: str(v) for k, v in row.runner.settings.items()}
        except (MotivnetError, ImportError, RuntimeError) as exc:
            row.fail(str(exc) if not isinstance(exc, ImportError) else
                     f"needs {exc.name}")


def measure_accuracy(rows: list[Row], faces: list, labels: np.ndarray | None) -> None:
    from motivnet_edge.compress.gate.evaluate import scores
    from motivnet_edge.targets.continuous import agreement
    from motivnet_edge.targets.labels import AFFECTNET8

    logits: dict[str, np.ndarray] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    for row in rows:
        if row.runner is None or row.speed_only:
            continue
        try:
            logits[row.key], values[row.key] = row.runner.outputs(faces, AFFECTNET7)
        except (MotivnetError, RuntimeError, ValueError) as exc:
            row.fail(f"inference failed: {exc}")
    reference = next((r for r in rows if r.kind in ("teacher", "full-model")
                      and r.key in logits), None)
    ref = logits.get(reference.key) if reference else None
    for row in rows:
        if row.key not in logits:
            continue
        out = logits[row.key]
        res = row.results
        res["faces"] = len(out)
        if labels is not None:
            s = scores(out.argmax(1), labels, list(AFFECTNET8), AFFECTNET7)
            res.update(top1=s["accuracy"], macro_recall=s["macro_recall"],
                       recall=s["recall"])
        if ref is not None:
            res["reference"] = reference.name
            res["agreement_full"] = float(np.mean(out.argmax(1) == ref.argmax(1)))
            res["kl_full"] = float(np.mean(kl_divergence(ref, out)))
            for name, s in agreement(values[row.key], values[reference.key]).items():
                res[f"{name}_rmse"], res[f"{name}_ccc"] = s["rmse"], s["ccc"]
        twin = next((r for r in rows if r.name == row.float_source and r.engine == row.engine
                     and r.device == row.device and r.key in logits), None)
        if twin is not None:
            res["agreement_float"] = float(np.mean(out.argmax(1) == logits[twin.key].argmax(1)))


def measure_speed(rows: list[Row], faces: list, args: argparse.Namespace) -> None:
    fast = {r.key: r.runner for r in rows if r.runner is not None and r.kind != "full-model"
            and not r.simulated}  # a simulator's time says nothing of the device's
    slow = {r.key: r.runner for r in rows if r.runner is not None and r.kind == "full-model"}
    log.info("timing %d rows: %d interleaved rounds of %d runs each at batch 1, then batch 8",
             len(fast), args.rounds, args.per_round)
    timings = time_runners(fast, faces, args.rounds, args.per_round) if fast else {}
    if slow:  # seconds per image: a few runs suffice
        log.info("timing the full model: 1 warm-up and %d runs per precision (on a CPU each "
                 "takes minutes at 1024x768)", args.full_model_runs)
        timings.update(time_runners(slow, faces, 1, args.full_model_runs, warmup=1,
                                    batch8=False))
    for row in rows:
        if row.key in timings:
            row.results.update(timings[row.key].to_dict(), threads=args.threads)


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge bench``: every row measured here (or, with ``collect``, every device's
    published results gathered); the table printed, JSON, CSV, Markdown and plot written."""
    if args.action == "collect":
        from motivnet_edge.benchmarks.fleet import collect

        return collect(args)
    info = host_info()
    print(f"host: {describe(info)}", file=sys.stderr)
    if args.artifacts is None:
        from motivnet_edge.edge.shipped import default_model

        args.artifacts = default_model()
        log.info("artifacts: the shipped model, %s", args.artifacts)
    if not args.artifacts.is_dir():
        raise MotivnetError(f"--artifacts {args.artifacts} is not a folder")
    gate = report.parse_gate(args.gate) if args.gate else None
    rows = full_model_rows(args, info)
    rows += artifact_rows(args.artifacts, args.threads) if args.artifacts else []
    rows += baseline_rows(args)
    if not rows:
        raise MotivnetError(f"nothing to measure in {args.artifacts}: give --artifacts, "
                            f"--full-model or --baseline")
    faces, labels, source = faces_for(args)
    if args.limit:
        faces, labels = faces[:args.limit], None if labels is None else labels[:args.limit]
    open_rows(rows)
    log.info("accuracy: %d rows on %d faces", sum(not r.speed_only for r in rows), len(faces))
    measure_accuracy(rows, faces, labels)
    measure_speed(rows, faces, args)
    if not args.no_rss:
        from motivnet_edge.benchmarks.rss import measure_rss

        log.info("peak RSS: a fresh process per artifact")
        measure_rss(rows, args.threads)
    for row in rows:
        if row.runner is not None:
            row.runner.close()
    results = report.assemble(rows, info, source, len(faces), gate, vars(args))
    if args.device_python:
        from motivnet_edge.benchmarks import device_rows

        results["device"] = device_rows.measure(args.artifacts, faces, labels,
                                                args.device_python, args.device_root,
                                                args.threads)
    if args.detectors:
        results["detectors"] = detector_rows(faces, args)
    if args.e2e:
        from motivnet_edge.benchmarks.e2e import run_e2e

        results["e2e"] = run_e2e(args)
    report.write(results, args.out)
    print(report.markdown(results))
    print(f"\nwrote {args.out}/results.json, results.csv, results.md, pareto.png")
    if args.publish:
        from motivnet_edge.benchmarks.fleet import publish

        publish(results, args)
    return 1 if gate is not None and not results["gate"]["passed"] else 0
