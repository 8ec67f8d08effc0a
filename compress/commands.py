"""Command-line stages: ``compress`` runs the whole chain; ``distil``, ``export``, ``quantize`` and
``validate`` run one stage each on the same output folder; ``detector`` makes and gates the face
detector's files.

This module imports no torch: the arguments are defined from plain registries, so ``--help``
works on a device install, and every argument is checked (:mod:`.checks`: files exist, numbers
in range, specs parse) before anything is trained or created. Defaults and presets come from
:mod:`.runfolder`, where each is written once. The stages are imported when a
command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

from motivnet_edge.compress.checks import (
    check_distil_args,
    check_labelled_eval,
    check_quant_args,
)
from motivnet_edge.compress.distil.world import SINGLE, World, join
from motivnet_edge.compress.int8.rknn_ops import PLATFORMS
from motivnet_edge.compress.options import add_options, given
from motivnet_edge.compress.quiet import quiet_third_party
from motivnet_edge.compress.registry import (
    DEFAULT_SIZE,
    DEFAULT_STUDENT,
    MOTIVNET_SIZES,
    REAL_FACES_STUDENT,
    STUDENTS,
    imagenet_available,
)
from motivnet_edge.compress.runfolder import RunFolder, qat_steps_for
from motivnet_edge.compress.settings import (
    PRESET_FIELDS,
    PRESETS,
    DataConfig,
    DistilConfig,
    Gate,
    QatConfig,
    QuantizeConfig,
    StudentConfig,
    TrainConfig,
    preset,
    preset_help,
)
from motivnet_edge.targets.classifier_spec import OUTPUT_KINDS, ClassifierSpec
from motivnet_edge.targets.engine import ENGINES
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import DEFAULT_FORMATS, FORMATS
from motivnet_edge.targets.labels import parse_label_list
from motivnet_edge.targets.preprocess import COLORS, REGIONS

log = logging.getLogger(__name__)


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")


def _teacher_args(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("teacher (default: the built-in demo teacher)")
    t.add_argument("--teacher", type=Path, help="MotivNet checkpoint, or an exported "
                   ".onnx/.xml/.tflite/TorchScript classifier (then --teacher-spec)")
    t.add_argument("--teacher-spec", help="an exported teacher's preprocessing and class order: "
                   "a YAML/JSON spec file or a shipped name (fer-mobilefacenet, motivnet)")
    t.add_argument("--teacher-model", default="motivnet-1b", choices=sorted(MOTIVNET_SIZES),
                   help="MotivNet size of a checkpoint teacher")
    t.add_argument("--teacher-labels", type=parse_label_list,
                   help="classes in output order, e.g. angry,disgust,fear,happy,sad,surprise,"
                        "neutral (overrides the spec's)")
    t.add_argument("--teacher-size", help="input HxW when the file does not say, e.g. 224x224")
    t.add_argument("--teacher-color", choices=COLORS)
    t.add_argument("--teacher-mean", help="per-channel mean in 0-255 units, e.g. 127.5")
    t.add_argument("--teacher-std", help="per-channel std in 0-255 units")
    t.add_argument("--teacher-crop", choices=REGIONS,
                   help="square crop around the box, the box stretched, or aligned on five "
                        "landmarks")
    t.add_argument("--teacher-outputs", choices=OUTPUT_KINDS,
                   help="logits, probabilities (a softmax exported with it), or auto")
    t.add_argument("--device", default="cpu", help="cpu or cuda for training (and the teacher, "
                   "unless --teacher-device); under torchrun, cuda is each process's own GPU")
    t.add_argument("--teacher-device", help="cpu or cuda for the teacher (default: --device)")
    t.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"),
                   help="teacher precision on CUDA (the CPU always runs fp32)")
    t.add_argument("--teacher-engine", choices=sorted(ENGINES),
                   help="the engine an exported teacher runs in (default: its format's; "
                        "OpenVINO runs the INT8 ONNX fer-mobilefacenet 4x faster than ONNX "
                        "Runtime on a Xeon with AMX); its outputs are cached apart")


def _data_args(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("data (default: built-in synthetic faces)"), DataConfig)


def _student_args(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("student (defaults depend on the run: the demo, or a real teacher "
                             "with real photos)")
    s.add_argument("--student", default="auto", choices=["auto", *sorted(STUDENTS)],
                   help=f"auto: {REAL_FACES_STUDENT} from ImageNet for a real teacher on real "
                        f"photos when its weights are installed, else {DEFAULT_STUDENT}")
    s.add_argument("--size", type=int, default=DEFAULT_SIZE, help="square input side")
    s.add_argument("--student-weights",
                   help="imagenet (the installed weights package) or a local state dict (a "
                        "distilled student's student.pth keeps its classifier: training goes "
                        "on from that student); default: imagenet where auto picked the "
                        "student and they are installed")
    s.add_argument("--preset", default="auto", choices=["auto", *PRESETS],
                   help="the training settings' defaults; auto: real for a real teacher on "
                        "real photos, else demo; patient: real's recipe made long (see "
                        "docs/patient.md)")
    add_options(s, TrainConfig, preset_help)
    s.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    s.add_argument("--quiet", action="store_true", help="no progress output")


def _quant_args(p: argparse.ArgumentParser) -> None:
    q = p.add_argument_group("INT8 and the gate")
    add_options(q, QuantizeConfig)
    add_options(q, Gate)
    q.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help=f"formats to quantise, comma-separated, of {', '.join(FORMATS)} (rknn "
                        f"needs rknn-toolkit2: make rknn-toolkit)")
    q.add_argument("--rknn-platform", default="rk3588", choices=PLATFORMS,
                   help="the Rockchip SoC an RKNN file is built for")
    add_options(q, QatConfig, preset_help)


def _labelled_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labelled-eval", type=Path, dest="labelled_eval",
                   help="labelled real photos (CSV of image,emotion or class folders) to report "
                        "accuracy, macro and per-class recall and the confusion matrix of the "
                        "teacher, the FP32 student and every INT8 artifact on")


# ---- running the stages ---------------------------------------------------------------------

def is_real_run(args: argparse.Namespace) -> bool:
    """A real teacher on real photos (not the demo on synthetic faces)."""
    return args.teacher is not None and bool(args.data)


def preset_kind(args: argparse.Namespace) -> str:
    """The preset the run's training defaults come from (--preset, or the kind of run)."""
    chosen = getattr(args, "preset", "auto")
    return chosen if chosen != "auto" else "real" if is_real_run(args) else "demo"


def distil_config(args: argparse.Namespace, world: World = SINGLE) -> DistilConfig:
    """The distil stage's typed configuration from the (checked) command line; ``cuda`` is
    this process's own GPU (its local rank) when there are several."""
    from motivnet_edge.targets.files import cache_dir

    real = is_real_run(args)
    settings = preset(preset_kind(args))
    auto = args.student == "auto"
    student = (REAL_FACES_STUDENT if real and imagenet_available(REAL_FACES_STUDENT)
               else DEFAULT_STUDENT) if auto else args.student
    weights = args.student_weights
    if weights is None and auto and real and imagenet_available(student):
        weights = "imagenet"
    data = DataConfig(**given(args, DataConfig))
    data.cache = data.cache or cache_dir() / "teacher"
    train = TrainConfig(**{**{k: settings[k] for k in PRESET_FIELDS}, **given(args, TrainConfig)},
                        device=world.device(args.device))
    return DistilConfig(data, StudentConfig(student, args.size, weights), train, args.resume,
                        not args.quiet)


def _teacher(args: argparse.Namespace, spec: ClassifierSpec | None, world: World,
             cfg: DistilConfig):
    """The teacher given, else the built-in demo teacher, trained first where it is not cached
    (after ``cfg``'s teaching settings are checked against its cut, so a refusal comes first)."""
    from motivnet_edge.compress.distil.demo_teacher import MODEL, ensure_demo_teacher
    from motivnet_edge.compress.distil.stage import check_teaching
    from motivnet_edge.compress.models.motivnet import crop_spec_for
    from motivnet_edge.compress.models.teachers import load_teacher

    device = world.device(args.teacher_device or args.device)
    if args.teacher is None:
        check_teaching(cfg, crop_spec_for(MODEL), "teacher built-in")
        with world.main_first():  # rank 0 trains it when it is not cached
            path = ensure_demo_teacher(progress=not args.quiet and world.main)
        if args.data and world.main:
            print("note: the built-in demo teacher has seen only drawn synthetic faces; on "
                  "real photos its outputs are near-ties that a student copies and INT8 "
                  "flips. Distil real photos with a real teacher (--teacher).",
                  file=sys.stderr)
        return load_teacher(path, model=MODEL, device=device, precision=args.precision)
    return load_teacher(args.teacher, spec, args.teacher_model, device, args.precision,
                        args.teacher_engine)


def run_distil(args: argparse.Namespace) -> int:
    """``motivnet-edge distil``: the arguments checked, then the distil stage (each torchrun
    process its part)."""
    quiet_third_party()
    import motivnet_edge.compress.distil.stage  # noqa: F401 (torch first: a device install is
    # told which extra it lacks, whatever the arguments)

    _distil(args, check_distil_args(args))
    return 0


def _distil(args: argparse.Namespace, spec: ClassifierSpec | None) -> World:
    """The distil stage on checked arguments (``spec``: the teacher's, from the check), in
    this process's place among torchrun's (its world, which it has left on return)."""
    quiet_third_party()
    from motivnet_edge.compress.distil.stage import stage_distil

    world = join(args.device)
    try:
        cfg = distil_config(args, world)
        if world.distributed:
            world.split_batch(cfg.train.batch)
        if world.main:
            _describe(args, cfg, world)
        history = stage_distil(args.out, _teacher(args, spec, world, cfg), cfg, world)
    finally:
        world.leave()
    last = history[-1] if history else {}
    if world.main:
        print("student: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                                      if isinstance(v, float)))
    return world


def _describe(args: argparse.Namespace, cfg: DistilConfig, world: World) -> None:
    train = cfg.train
    print(f"distil: {preset_kind(args)} settings, student "
          f"{cfg.student.name} ({cfg.student.weights or 'from scratch'}) at {cfg.student.size} "
          f"px, {train.epochs} epochs (at least {train.min_steps} steps), batch {train.batch}"
          + (f" ({train.batch // world.size} on each of {world.size} processes)"
             if world.distributed else "") + f", augment {train.augment}"
          + (f", the teacher run on every view (mixup {train.mixup}, cutmix {train.cutmix}, "
             f"warp {train.warp}, boundary {train.boundary}, hint {train.hint})"
             if train.consistent else ", the teacher's cached outputs"), file=sys.stderr)


def _gate(args: argparse.Namespace) -> Gate:
    return Gate(**given(args, Gate))


def run_export(args: argparse.Namespace) -> int:
    """``motivnet-edge export``: the FP32 student exported in every format."""
    quiet_third_party()
    from motivnet_edge.compress.int8.export import stage_export

    for fmt, path in stage_export(args.out).items():
        print(f"{fmt}: {path}")
    return 0


def qat_config(args: argparse.Namespace) -> QatConfig:
    """QAT settings: the preset's steps for the kind of run distilled in the folder, unless
    --qat-steps says otherwise."""
    steps = args.qat_steps
    if steps is None:
        steps = qat_steps_for(RunFolder(args.out).read_record())
    return QatConfig(**{**given(args, QatConfig), "steps": steps,
                        "seed": getattr(args, "seed", 0)})


def run_quantize(args: argparse.Namespace) -> int:
    """``motivnet-edge quantize``: INT8 artifacts, each gated; 1 when one is rejected."""
    quiet_third_party()
    from motivnet_edge.compress.int8.stage import stage_quantize

    formats = check_quant_args(args)
    results = stage_quantize(args.out, args.calibration, _gate(args), formats,
                             qat_config(args), not getattr(args, "quiet", False),
                             args.rknn_platform)
    for fmt, r in results.items():
        print(f"{fmt}: {r['file']} ({'passed' if r['passed'] else 'REJECTED'})")
    return 0 if all(r["passed"] for r in results.values()) else 1


def run_validate(args: argparse.Namespace) -> int:
    """``motivnet-edge validate``: report.json and manifest.json written, the report printed; 1
    when an INT8 artifact fails."""
    from motivnet_edge.compress.gate.report import print_report
    from motivnet_edge.compress.gate.stage import stage_validate

    check_quant_args(args)
    check_labelled_eval(args)
    report, ok = stage_validate(args.out, _gate(args), args.labelled_eval)
    print_report(report)
    return 0 if ok else 1


def run_compress(args: argparse.Namespace) -> int:
    """``motivnet-edge compress``: every argument checked, then distil, export, quantize and
    validate in one run."""
    quiet_third_party()
    from motivnet_edge.compress.gate.report import print_report
    from motivnet_edge.compress.gate.stage import stage_validate
    from motivnet_edge.compress.int8.export import stage_export
    from motivnet_edge.compress.int8.stage import stage_quantize

    spec = check_distil_args(args)
    formats = check_quant_args(args)
    check_labelled_eval(args)
    if not _distil(args, spec).main:
        return 0  # the other ranks' part ends with training
    stage_export(args.out)
    gate = _gate(args)
    stage_quantize(args.out, args.calibration, gate, formats, qat_config(args), not args.quiet,
                   args.rknn_platform)
    report, ok = stage_validate(args.out, gate, args.labelled_eval)
    print_report(report)
    folder = RunFolder(args.out)
    print(f"\nwrote {folder.report} and {folder.manifest}")
    return 0 if ok else 1


def _detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="the detector folder to write (its "
                   "files and manifest.json; detector.model takes it)")
    p.add_argument("--photos", type=Path, help="a folder of real photos set into 640x480 "
                   "camera frames, 1-3 a frame, for the gate (default: synthetic scenes, "
                   "plumbing only)")
    p.add_argument("--video", type=Path, help="a video whose frames the gate uses too")
    p.add_argument("--frames", type=int, default=600, help="photos and video frames used, each")
    p.add_argument("--model", type=Path, help="the YuNet .onnx to convert (default: the "
                   "shipped 2023mar file)")
    p.add_argument("--reference", type=Path, help="the YuNet .onnx the files are held to, in "
                   "OpenCV (default: --model itself; e.g. the published file for a retrained "
                   "one)")
    p.add_argument("--threads", type=int, default=1, help="threads per engine")


def run_detector(args: argparse.Namespace) -> int:
    """``motivnet-edge detector``: YuNet made into every engine's files, each gated against
    OpenCV's YuNet, written as a detector folder with its manifest; 1 when a file fails."""
    quiet_third_party()
    for module in ("torch", "litert_torch"):  # the converters, asked before any file is made
        importlib.import_module(module)
    from motivnet_edge.compress.detector_stage import markdown, stage_detector
    from motivnet_edge.edge.data import scenes
    from motivnet_edge.edge.yunet import SHIPPED_YUNET

    source = args.model or SHIPPED_YUNET
    for name, path in (("--model", source), ("--reference", args.reference),
                       ("--photos", args.photos), ("--video", args.video)):
        if path is not None and not Path(path).exists():
            raise MotivnetError(f"{name} {path} does not exist")
    if args.frames < 1:
        raise MotivnetError(f"--frames {args.frames} must be at least 1")
    frames, described = scenes.gate_frames(args.photos, args.video, args.frames)
    rows, ok = stage_detector(args.out, frames, source, described, args.threads,
                              args.reference)
    print(markdown(rows, len(frames), described))
    print(f"\nwrote {args.out}/manifest.json" + ("" if ok else ": a file FAILED its gate"))
    return 0 if ok else 1


def _both(*fns):
    def add(p: argparse.ArgumentParser) -> None:
        for fn in fns:
            fn(p)
    return add


_DISTIL_ARGS = (_out, _teacher_args, _data_args, _student_args)
DISTIL = SimpleNamespace(add_arguments=_both(*_DISTIL_ARGS), run=run_distil)
EXPORT = SimpleNamespace(add_arguments=_out, run=run_export)
QUANTIZE = SimpleNamespace(add_arguments=_both(_out, _quant_args), run=run_quantize)
VALIDATE = SimpleNamespace(add_arguments=_both(_out, _quant_args, _labelled_arg),
                           run=run_validate)
DETECTOR = SimpleNamespace(add_arguments=_detector_args, run=run_detector)
COMPRESS = SimpleNamespace(add_arguments=_both(*_DISTIL_ARGS, _quant_args, _labelled_arg),
                           run=run_compress)
