"""Every command-line argument of the compress commands checked before anything runs: files
exist, folders hold images, numbers are in range, specs parse; nothing is created on a bad
argument. No torch here, like the commands that call it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from motivnet_edge.compress.options import check_options
from motivnet_edge.compress.registry import STUDENTS
from motivnet_edge.compress.settings import DataConfig, Gate, QatConfig, QuantizeConfig, TrainConfig
from motivnet_edge.targets.classifier_spec import ClassifierSpec, load_spec
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import FORMATS
from motivnet_edge.targets.preprocess import CropSpec


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise MotivnetError(f"{name} {text!r} is not a comma-separated list of numbers") from exc


def _exists(path: Path | None, what: str, kind: str = "file") -> None:
    if path is None:
        return
    ok = path.is_file() if kind == "file" else path.exists()
    if not ok:
        raise MotivnetError(f"{what} {path} does not exist")


def teacher_spec(args: argparse.Namespace) -> ClassifierSpec | None:
    """The exported teacher's spec: --teacher-spec, with any --teacher-* flag overriding it."""
    base = load_spec(args.teacher_spec) if args.teacher_spec else None
    flags = {"color": args.teacher_color, "region": args.teacher_crop,
             "mean": _floats(args.teacher_mean, "--teacher-mean"),
             "std": _floats(args.teacher_std, "--teacher-std")}
    if args.teacher_size:
        try:
            flags["height"], flags["width"] = (int(v) for v in
                                               args.teacher_size.lower().split("x"))
        except ValueError as exc:
            raise MotivnetError(f"--teacher-size {args.teacher_size!r} is not HxW") from exc
    given = {k: v for k, v in flags.items() if v is not None}
    labels = args.teacher_labels or (base.labels if base else None)
    if base is None and labels is None:
        return None
    if labels is None:
        raise MotivnetError("--teacher-labels: an exported teacher needs its classes in output "
                            "order (or --teacher-spec)")
    crop = base.crop if base else CropSpec(margin=args.margin)
    heads = base is not None and len(labels) == len(base.labels)  # the spec's output layout
    return ClassifierSpec(tuple(labels), CropSpec.from_dict({**crop.to_dict(), **given}),
                          args.teacher_outputs or (base.outputs if base else "auto"),
                          base.classes if heads else (), base.continuous if heads else {})


def check_distil_args(args: argparse.Namespace) -> ClassifierSpec | None:
    """Every distil argument checked, nothing created: files exist, folders hold images,
    numbers are in range, the teacher spec parses. Returns that spec (None: the teacher's
    file or the demo teacher says it all)."""
    from motivnet_edge.compress.distil.data import media_files

    if args.out.exists() and not args.out.is_dir():
        raise MotivnetError(f"--out {args.out} is a file, not a folder")
    _exists(args.teacher, "teacher")
    spec = teacher_spec(args)
    for d in [*args.data, *args.calibration_data]:
        if not media_files(d):
            raise MotivnetError(f"data {d} holds no image or video "
                                f"(jpg, png, bmp, webp, mp4, avi, ...)")
    check_labelled(args.labelled)
    _exists(args.detector, "face detector model")
    weights = args.student_weights
    if weights not in (None, "imagenet"):
        _exists(Path(weights), "student weights")
    check_options(args, DataConfig)
    check_options(args, TrainConfig)
    if args.size < 16:
        raise MotivnetError(f"--size {args.size} must be at least 16")
    entry = STUDENTS.get(args.student)
    if entry is not None and entry.side(args.size) != args.size:
        raise MotivnetError(f"--size {args.size}: student {args.student} takes a side that is a "
                            f"multiple of {entry.multiple} (e.g. {entry.side(args.size)})")
    for name in ("device", "teacher_device"):
        value = getattr(args, name, None)
        if value is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise MotivnetError(f"--{name.replace('_', '-')} {value!r} is not cpu, cuda or "
                                f"cuda:N")
    return spec


def check_quant_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The INT8 arguments checked; returns the formats asked for."""
    formats = _formats(args.formats)
    for cls in (QuantizeConfig, Gate, QatConfig):
        check_options(args, cls)
    if "rknn" in formats:
        from motivnet_edge.compress.int8.rknn_ops import missing_reason

        reason = missing_reason()
        if reason:
            raise MotivnetError(f"--formats rknn: {reason}")
    return formats


def _formats(text: str) -> tuple[str, ...]:
    fmts = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise MotivnetError(f"--formats {text!r}: each must be one of {', '.join(FORMATS)}")
    return fmts


def check_labelled(path: Path | None) -> None:
    """Labelled photos read through before any work: every label known, every image there
    (a bad line found by the validate stage would come after distilling and writing 96 MB)."""
    if path is None:
        return
    from motivnet_edge.edge.data.labelled import load_labelled
    from motivnet_edge.targets.labels import AFFECTNET8

    found = load_labelled(path, AFFECTNET8)
    missing = [p for p in found.paths if not p.is_file()]
    if missing:
        raise MotivnetError(f"labelled data {path}: {len(missing)} images do not exist, e.g. "
                            f"{missing[0]}")


def check_labelled_eval(args: argparse.Namespace) -> None:
    check_labelled(args.labelled_eval)
