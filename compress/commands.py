"""Command-line stages: ``compress`` runs the whole chain; ``distil``, ``export``, ``quantize`` and
``validate`` run one stage each on the same output folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

from motivnet_edge.compress.config import DataConfig, DistilConfig, StudentConfig
from motivnet_edge.compress.train import TrainConfig
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import FORMATS, SUFFIXES
from motivnet_edge.targets.labels import parse_label_list

log = logging.getLogger(__name__)


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")


def _distil_args(p: argparse.ArgumentParser) -> None:
    from motivnet_edge.compress.motivnet import MODELS
    from motivnet_edge.compress.students import DEFAULT_SIZE, DEFAULT_STUDENT, STUDENTS

    t = p.add_argument_group("teacher (default: the built-in demo teacher)")
    t.add_argument("--teacher", type=Path, help="MotivNet checkpoint, or an exported "
                   ".onnx/.tflite/TorchScript classifier (then --teacher-labels)")
    t.add_argument("--teacher-model", default="motivnet-1b", choices=sorted(MODELS),
                   help="MotivNet size of a checkpoint teacher")
    t.add_argument("--teacher-labels", type=parse_label_list,
                   help="an exported teacher's classes in output order, e.g. "
                        "angry,disgust,fear,happy,sad,surprise,neutral")
    t.add_argument("--teacher-size", help="an exported teacher's input HxW when the file "
                                          "does not say, e.g. 224x224")
    t.add_argument("--teacher-color", choices=("rgb", "bgr", "gray"), default="rgb")
    t.add_argument("--teacher-mean", default="123.675,116.28,103.53",
                   help="per-channel mean in 0-255 units")
    t.add_argument("--teacher-std", default="58.395,57.12,57.375",
                   help="per-channel std in 0-255 units")
    t.add_argument("--device", default="cpu", help="cpu or cuda for the teacher and training")
    t.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"),
                   help="teacher precision on CUDA (the CPU always runs fp32)")
    d = p.add_argument_group("data (default: built-in synthetic faces)")
    d.add_argument("--data", type=Path, action="append", default=[],
                   help="image folder, image or video file (repeatable); no labels needed")
    d.add_argument("--labelled", type=Path, help="class folders or a CSV of image,emotion")
    d.add_argument("--calibration-data", type=Path, action="append", default=[],
                   help="images or videos of the deployment domain (repeatable): INT8 is "
                        "calibrated on their crops and gated on their held-out part")
    d.add_argument("--synthetic", type=int, default=2400, help="synthetic faces when no data")
    d.add_argument("--every", type=int, default=10, help="sample every N-th video frame")
    d.add_argument("--margin", type=float, default=0.15, help="crop margin around the face")
    d.add_argument("--val-fraction", type=float, default=0.2, help="held-out share")
    d.add_argument("--detector", type=Path, help="YuNet .onnx (default: Haar cascade)")
    d.add_argument("--cache-dir", type=Path, help="teacher output cache "
                   "(default: $MOTIVNET_CACHE or ~/.cache/motivnet-edge)")
    s = p.add_argument_group("student")
    s.add_argument("--student", default=DEFAULT_STUDENT, choices=sorted(STUDENTS))
    s.add_argument("--size", type=int, default=DEFAULT_SIZE, help="square input side")
    s.add_argument("--student-weights", type=Path, help="local ImageNet weights file")
    s.add_argument("--epochs", type=int, default=15, help="epochs, at least")
    s.add_argument("--min-steps", type=int, default=1000,
                   help="train at least this many optimizer steps (a small data set gets more "
                   "epochs); 0 trains exactly --epochs")
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--temperature", type=float, default=4.0)
    s.add_argument("--alpha", type=float, default=0.5, help="weight of cross-entropy on labels")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress bars")


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise MotivnetError(f"{name} {text!r} is not a comma-separated list of numbers") from exc


def _teacher(args: argparse.Namespace):
    from motivnet_edge.compress.demo_teacher import MODEL, ensure_demo_teacher
    from motivnet_edge.compress.teachers import load_teacher
    from motivnet_edge.targets.preprocess import CropSpec

    if args.teacher is None:
        path = ensure_demo_teacher(progress=not args.quiet)
        if args.data:
            print("note: the built-in demo teacher has seen only drawn synthetic faces; on "
                  "real photos its outputs are near-ties that a student copies and INT8 "
                  "flips. With the demo teacher, give real photos as --calibration-data; "
                  "distil on them with a real teacher (--teacher).", file=sys.stderr)
        return load_teacher(path, model=MODEL, device=args.device, precision=args.precision)
    spec = None
    if args.teacher.suffix.lower() in (*SUFFIXES, ".pt", ".pt2", ".ts"):
        h = w = 224
        if args.teacher_size:
            try:
                h, w = (int(v) for v in args.teacher_size.lower().split("x"))
            except ValueError as exc:
                raise MotivnetError(f"--teacher-size {args.teacher_size!r} is not HxW") from exc
        spec = CropSpec(height=h, width=w, margin=args.margin, color=args.teacher_color,
                        mean=_floats(args.teacher_mean, "--teacher-mean"),
                        std=_floats(args.teacher_std, "--teacher-std"))
    return load_teacher(args.teacher, args.teacher_labels, spec, args.teacher_model,
                        args.device, args.precision)


def distil_config(args: argparse.Namespace) -> DistilConfig:
    """The distil stage's typed configuration from the command line."""
    from motivnet_edge.compress.demo_teacher import cache_dir

    data = DataConfig(list(args.data), args.labelled, list(args.calibration_data),
                      args.synthetic, args.every, args.margin, args.val_fraction, args.detector,
                      args.cache_dir or cache_dir() / "teacher")
    train = TrainConfig(epochs=args.epochs, min_steps=args.min_steps, batch=args.batch,
                        lr=args.lr, temperature=args.temperature, alpha=args.alpha,
                        seed=args.seed, device=args.device)
    return DistilConfig(data, StudentConfig(args.student, args.size, args.student_weights),
                        train, args.resume, not args.quiet)


def run_distil(args: argparse.Namespace) -> int:
    from motivnet_edge.compress.stages import stage_distil

    cfg = distil_config(args)
    history = stage_distil(args.out, _teacher(args), cfg)
    last = history[-1] if history else {}
    print("student: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                                  if isinstance(v, float)))
    return 0


def _quant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", type=int, default=300, help="face crops for INT8 calibration")
    p.add_argument("--gate", type=float, default=0.99,
                   help="minimum agreement of an INT8 artifact with the FP32 student")
    p.add_argument("--max-flip-margin", type=float, default=1.0,
                   help="an INT8 artifact may not change a decision the FP32 student made "
                        "with a top-2 logit margin above this")
    p.add_argument("--formats", default="onnx,openvino,tflite",
                   help="formats to quantise, comma-separated")


def _gate(args: argparse.Namespace):
    from motivnet_edge.compress.validate import Gate

    return Gate(args.gate, args.max_flip_margin)


def _formats(text: str) -> tuple[str, ...]:
    fmts = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise MotivnetError(f"--formats {text!r}: each must be one of {', '.join(FORMATS)}")
    return fmts


def run_export(args: argparse.Namespace) -> int:
    from motivnet_edge.compress.stages import stage_export

    for fmt, path in stage_export(args.out).items():
        print(f"{fmt}: {path}")
    return 0


def run_quantize(args: argparse.Namespace) -> int:
    from motivnet_edge.compress.stages import stage_quantize

    results = stage_quantize(args.out, args.calibration, _gate(args), _formats(args.formats))
    for fmt, r in results.items():
        print(f"{fmt}: {r['file']} ({'passed' if r['passed'] else 'REJECTED'})")
    return 0 if all(r["passed"] for r in results.values()) else 1


# below this agreement with the teacher on held-out crops, the gate only says that INT8 copies
# a student that is itself of little use
WEAK_STUDENT = 0.8


def print_report(report: dict, file=sys.stdout) -> None:
    cols = ("format", "precision", "bytes", "agreement_with_float", "flips",
            "agreement_with_teacher", "accuracy", "cosine_with_float", "status")
    heads = ("file", "format", "prec", "size", "agr/float", "flips (max fp32 margin)",
             "agr/teacher", "accuracy", "cosine", "status")
    rows = []
    for name, r in report["artifacts"].items():
        cells = [name]
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v / 1e6:.2f} MB" if c == "bytes" else
                         f"{v} ({r['flip_max_fp32_margin']:.3f})" if c == "flips" and v else
                         f"{v:.4f}" if isinstance(v, float) else str(v))
        rows.append(cells)
    widths = [max(len(x) for x in col) for col in zip(heads, *rows, strict=False)]
    for line in [heads, *rows]:
        print("  ".join(c.ljust(wd) for c, wd in zip(line, widths, strict=True)), file=file)
    s = report["student"]
    print(f"\nstudent {s['name']} @{s['input']}: agreement with teacher "
          f"{s['agreement_with_teacher']:.4f} on {report['heldout_crops']} held-out crops"
          + (f", accuracy {s['accuracy']:.4f}" if "accuracy" in s else ""), file=file)
    if s["agreement_with_teacher"] < WEAK_STUDENT:
        print(f"warning: the student keeps little of the teacher (agreement below "
              f"{WEAK_STUDENT}): distil on more faces, or start from ImageNet weights "
              f"(--student-weights)", file=file)
    weights_only = [n for n, r in report["artifacts"].items() if r["precision"] == "int8-weights"]
    if weights_only:
        print(f"weights-only INT8 (float arithmetic; full INT8 flipped too many decisions): "
              f"{', '.join(weights_only)}", file=file)
    print("gate " + ("PASSED" if report["passed"] else "FAILED"), file=file)


def run_validate(args: argparse.Namespace) -> int:
    from motivnet_edge.compress.stages import stage_validate

    report, ok = stage_validate(args.out, _gate(args))
    print_report(report)
    return 0 if ok else 1


def run_compress(args: argparse.Namespace) -> int:
    from motivnet_edge.compress.stages import stage_export, stage_quantize, stage_validate

    run_distil(args)
    stage_export(args.out)
    gate = _gate(args)
    stage_quantize(args.out, args.calibration, gate, _formats(args.formats))
    report, ok = stage_validate(args.out, gate)
    print_report(report)
    print(f"\nwrote {args.out / 'report.json'} and {args.out / 'manifest.json'}")
    return 0 if ok else 1


def _both(*fns):
    def add(p: argparse.ArgumentParser) -> None:
        for fn in fns:
            fn(p)
    return add


DISTIL = SimpleNamespace(add_arguments=_both(_out, _distil_args), run=run_distil)
EXPORT = SimpleNamespace(add_arguments=_out, run=run_export)
QUANTIZE = SimpleNamespace(add_arguments=_both(_out, _quant_args), run=run_quantize)
VALIDATE = SimpleNamespace(add_arguments=_both(_out, _quant_args), run=run_validate)
COMPRESS = SimpleNamespace(add_arguments=_both(_out, _distil_args, _quant_args),
                           run=run_compress)
