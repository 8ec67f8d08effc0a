"""The compress chain as stages that hand over through files in the output folder.

``distil`` (crops, teacher outputs, student) -> ``export`` (FP32 ONNX, IR, TFLite) ->
``quantize`` (INT8 with fallback recipes, gated) -> ``validate`` (report.json, manifest.json).
State lives in ``OUT/work/``; artifacts, report and manifest in ``OUT/``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.artifacts import file_entry, write_manifest
from motivnet_edge.compress.config import DistilConfig, RunConfig, TeacherRecord
from motivnet_edge.compress.data import (
    MIRROR,
    CropSet,
    Mirrored,
    collect,
    crop_hash,
    gate_files,
    split_index,
)
from motivnet_edge.compress.demo_teacher import cache_dir
from motivnet_edge.compress.evaluate import labelled_report
from motivnet_edge.compress.export import export_fp32, finish
from motivnet_edge.compress.quantize import RECIPES, calibration_batch, quantize
from motivnet_edge.compress.students import STUDENTS, build_student, is_vit, student_spec
from motivnet_edge.compress.teacher_cache import TeacherCache
from motivnet_edge.compress.teachers import Teacher, reload_teacher
from motivnet_edge.compress.train import predict, train
from motivnet_edge.compress.validate import DEFAULT_GATE, Gate, evaluate_artifact, run_artifact
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path, sha256_file, write_json
from motivnet_edge.targets.formats import FORMATS, REJECTED, artifact_name, get_format, is_artifact
from motivnet_edge.targets.metadata import read_metadata
from motivnet_edge.targets.preprocess import CropSpec, FaceImage

log = logging.getLogger(__name__)
STUDENT_WEIGHTS = "student.pth"  # the FP32 student's state dict, beside its artifacts
MIRROR_TEACHER = "teacher-mirrored.npy"  # the teacher's outputs for the mirrored faces


def work_dir(out: Path) -> Path:
    return Path(out) / "work"


def load_run(out: Path) -> RunConfig:
    path = work_dir(out) / "run.json"
    if not path.is_file():
        raise MotivnetError(f"{path} is missing: run 'motivnet-edge distil --out {out}' first")
    return RunConfig.from_dict(json.loads(path.read_text()))


def stage_distil(out: Path, teacher: Teacher, cfg: DistilConfig) -> list[dict]:
    """Faces, the teacher's outputs for them and their mirror images (one cached pass), and the
    trained student. ``cfg.data.calibration``: separate data (the deployment domain) whose faces
    calibrate INT8 and whose held-out part gates it. Nothing is written until the faces are
    found."""
    data, progress = cfg.data, cfg.progress
    detector = FaceDetector(data.detector) if data.detector else None
    work = work_dir(out)
    crops_path, teacher_path = gate_files(work, calibrated=False)
    if cfg.resume and crops_path.is_file():
        crops = CropSet.load(crops_path)
    else:
        crops = collect(data.data, data.labelled, detector, data.every, data.synthetic,
                        cfg.train.seed, teacher.classes, progress)
    calib = collect(data.calibration, None, detector, data.every, 0, cfg.train.seed,
                    teacher.classes, progress) if data.calibration else None
    work.mkdir(parents=True, exist_ok=True)
    crops.save(crops_path)
    cache = TeacherCache(data.cache, teacher.key)
    logits = cache.logits(crops.hashes, crops.crops, teacher.predict, progress)
    mirrored = cache.logits([h + MIRROR for h in crops.hashes], Mirrored(crops.crops),
                            teacher.predict, progress, desc="teacher, mirrored")
    np.save(teacher_path, logits)
    np.save(work / MIRROR_TEACHER, mirrored)
    if calib is not None:
        calib_path, calib_teacher_path = gate_files(work, calibrated=True)
        calib.save(calib_path)
        np.save(calib_teacher_path,
                cache.logits(calib.hashes, calib.crops, teacher.predict, progress))
    student = cfg.student
    template = tuple(map(tuple, teacher.crop.points() * (student.size / teacher.crop.width))) \
        if teacher.crop.aligned else ()
    spec = student_spec(student.name, student.size, data.margin,
                        "aligned" if teacher.crop.aligned else "square", template)
    run = RunConfig(student, spec.to_dict(), data.margin, cfg.train.seed, data.val_fraction,
                    list(teacher.classes),
                    TeacherRecord(teacher.identity, teacher.key, teacher.spec.to_dict(),
                                  str(Path(teacher.path).resolve()) if teacher.path else ""),
                    cfg.train, data.describe(), dict(crops.skipped),
                    ", ".join(map(str, data.calibration)), str(data.cache))
    write_json(work / "run.json", run.to_dict())
    tr, va = split_index(crops.hashes, data.val_fraction)
    if not va:
        raise MotivnetError(f"no held-out crops among {len(crops)}: raise --val-fraction")
    labels = np.asarray(crops.labels)
    model = build_student(student.name, len(teacher.classes), student.size, student.weights)
    train_crops = Mirrored([crops.crops[i] for i in tr], originals=True)
    history = train(model, spec, train_crops, np.concatenate([logits[tr], mirrored[tr]]),
                    np.concatenate([labels[tr], labels[tr]]),
                    [crops.crops[i] for i in va], logits[va], labels[va], cfg.train,
                    checkpoint=work / "student.ckpt", resume=cfg.resume, progress=progress,
                    desc=f"distil {student.name}")
    with atomic_path(Path(out) / STUDENT_WEIGHTS) as tmp:
        torch.save(model.state_dict(), tmp)
    write_json(work / "history.json", {"history": history})
    return history


@dataclass
class Work:
    """What export, quantize and validate need. ``crops`` are the gate's domain: the
    calibration data when it was given, else the distillation data."""

    run: RunConfig
    crops: CropSet
    teacher_logits: np.ndarray
    model: torch.nn.Module
    train_idx: list[int]
    val_idx: list[int]

    @property
    def spec(self) -> CropSpec:
        return CropSpec.from_dict(self.run.student_crop)

    def val(self) -> tuple[list[FaceImage], np.ndarray, np.ndarray, np.ndarray | None]:
        crops = [self.crops.crops[i] for i in self.val_idx]
        labels = np.asarray(self.crops.labels)[self.val_idx]
        float_logits = predict(self.model, crops, self.spec)
        return (crops, float_logits, self.teacher_logits[self.val_idx],
                labels if labels.min() >= 0 else None)

    def base_meta(self, out: Path) -> dict:
        student = self.run.student
        return {"task": "facial-emotion", "labels": self.run.classes,
                "teacher": self.run.teacher.to_meta(),
                "student": {"name": student.name, "timm": STUDENTS[student.name].timm,
                            "input": student.size, "weights": str(student.weights or "scratch"),
                            "sha256": sha256_file(Path(out) / STUDENT_WEIGHTS),
                            "parameters": sum(p.numel() for p in self.model.parameters())}}


def load_work(out: Path) -> Work:
    run = load_run(out)
    crops_path, teacher_path = gate_files(work_dir(out), bool(run.calibration_data))
    crops = CropSet.load(crops_path)
    weights = Path(out) / STUDENT_WEIGHTS
    if not weights.is_file():
        raise MotivnetError(f"{weights} is missing: the distil stage did not finish")
    model = build_student(run.student.name, len(run.classes), run.student.size)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    teacher = np.load(teacher_path)
    tr, va = split_index(crops.hashes, run.val_fraction)
    return Work(run, crops, teacher, model.eval(), tr, va)


def stage_export(out: Path) -> dict[str, Path]:
    w = load_work(out)
    return export_fp32(w.model, w.spec, Path(out), w.base_meta(out))


def _calibration(w: Work, n: int) -> list[np.ndarray]:
    """``n`` training crops; held-out crops are never used, so the gate stays honest."""
    idx = w.train_idx
    if len(idx) < n:
        log.warning("only %d training crops for calibration (asked for %d); lower "
                    "--val-fraction or give more data", len(idx), n)
    rng = np.random.default_rng(w.run.seed)
    pick = rng.choice(idx, size=min(n, len(idx)), replace=False)
    return [w.crops.crops[i] for i in pick]


def stage_quantize(out: Path, calibration: int = 300, gate: Gate = DEFAULT_GATE,
                   formats: tuple[str, ...] = tuple(FORMATS)) -> dict[str, dict]:
    """INT8 for each format; recipes tried in order until one passes the ``gate``.
    An artifact that never passes is kept under its rejected name for inspection."""
    out = Path(out)
    w = load_work(out)
    calib = _calibration(w, calibration)
    val_crops, float_logits, teacher_logits, labels = w.val()
    base = w.base_meta(out)
    results: dict[str, dict] = {}
    for fmt in formats:
        fp32 = out / artifact_name("student", "fp32", fmt)
        if not fp32.is_file():
            raise MotivnetError(f"{fp32} is missing: run 'motivnet-edge export --out {out}'")
        batch = calibration_batch(calib, w.spec, fmt)
        trials: list[dict] = []
        final = out / artifact_name("student", "int8", fmt)
        trial = out / f".trial-{final.name}"
        best = out / f".best-{final.name}"  # the best trial so far, kept if none passes
        for recipe in RECIPES[fmt]:
            if recipe.source and not _usable_source(
                    out / artifact_name("student", "int8", recipe.source), base):
                continue  # built from another format's artifact, which is not full INT8 here
            with atomic_path(trial) as tmp:
                quantize(fmt, fp32, w.model, batch, recipe, tmp, is_vit(w.run.student.name))
                finish(tmp, trial, fmt, base, w.spec,
                       {**recipe.to_dict(), "calibration_crops": len(calib)})
            scores = evaluate_artifact(trial, val_crops, float_logits, teacher_logits, labels,
                                       check=False)
            trials.append({"recipe": recipe.name, **{k: scores[k] for k in
                                                        ("agreement_with_float", "flips",
                                                         "flip_max_fp32_margin",
                                                         "cosine_with_float")}})
            log.info("%s int8 %s: agreement with float %.4f, %d flips (largest FP32 margin "
                     "%.3f)", fmt, recipe.name, scores["agreement_with_float"],
                     scores["flips"], scores["flip_max_fp32_margin"])
            if gate.rank(scores) >= max(gate.rank(t) for t in trials):
                _move(trial, best, fmt)
            if gate.passes(scores):
                break
        passed = any(gate.passes(t) for t in trials)
        rejected = out / artifact_name("student", "int8", fmt, REJECTED)
        keep, other = (final, rejected) if passed else (rejected, final)
        _move(best, keep, fmt)
        _remove(trial, fmt)
        _remove(other, fmt)  # a previous run's verdict on this format
        results[fmt] = {"file": keep.name, "passed": passed, "trials": trials}
    write_json(work_dir(out) / "quantize.json", results)
    return results


def _usable_source(path: Path, base: dict) -> bool:
    """True when ``path`` exists, was made from this folder's current student and is full
    INT8 (a weights-only source would make a weights-only copy; that recipe comes last)."""
    if not path.is_file():
        return False
    meta = read_metadata(path)
    return meta.get("student", {}).get("sha256") == base["student"]["sha256"] \
        and meta.get("precision") == "int8"


def _move(src: Path, dst: Path, fmt: str) -> None:
    # companions (an IR's .bin) first, the file engines open last
    files = get_format(fmt).files
    for s, d in reversed(list(zip(files(src), files(dst), strict=True))):
        os.replace(s, d)


def _remove(path: Path, fmt: str) -> None:
    for p in get_format(fmt).files(path):
        p.unlink(missing_ok=True)


def labelled_evaluation(out: Path, w: Work, artifacts: list[Path], labelled: Path,
                        progress: bool = True) -> dict:
    """The teacher, the FP32 student and every artifact on labelled real faces."""
    teacher = reload_teacher(w.run.teacher)
    cache = TeacherCache(Path(w.run.teacher_cache or cache_dir() / "teacher"), teacher.key)

    def teacher_logits(faces: list[FaceImage]) -> np.ndarray:
        return cache.logits([crop_hash(f) for f in faces], faces, teacher.predict, progress)

    models = {"teacher": teacher_logits,
              STUDENT_WEIGHTS: lambda faces: predict(w.model, faces, w.spec)}
    for path in artifacts:
        models[path.name] = lambda faces, p=path: run_artifact(p, faces, check=False)[0]
    return labelled_report(labelled, w.run.classes, models, progress=progress)


def stage_validate(out: Path, gate: Gate = DEFAULT_GATE, labelled: Path | None = None
                   ) -> tuple[dict, bool]:
    """report.json and manifest.json for every artifact in ``out``; True when all INT8 pass.
    With ``labelled`` real photos, every model is also scored on their labels."""
    out = Path(out)
    w = load_work(out)
    val_crops, float_logits, teacher_logits, labels = w.val()
    quant = json.loads((work_dir(out) / "quantize.json").read_text()) \
        if (work_dir(out) / "quantize.json").is_file() else {}
    artifacts = sorted(p for p in out.iterdir() if is_artifact(p))
    if not artifacts:
        raise MotivnetError(f"no artifacts in {out}: run 'motivnet-edge export' first")
    rows, entries, ok = {}, [file_entry(out / STUDENT_WEIGHTS, "student-fp32-weights")], True
    for path in artifacts:
        row = evaluate_artifact(path, val_crops, float_logits, teacher_logits, labels,
                                check=False)
        rejected = f".{REJECTED}." in path.name
        row["status"] = "rejected" if rejected or (
            row["precision"].startswith("int8") and not gate.passes(row)) \
            else "ok"
        if row["precision"].startswith("int8"):
            row["trials"] = quant.get(row["format"], {}).get("trials", [])
        ok &= row["status"] == "ok"
        rows[path.name] = row
        role = ("rejected-" if row["status"] != "ok" else "") + \
            f"{row['format']}-{row['precision']}"
        entries.append(file_entry(path, role, precision=row["precision"]))
    teacher_pred = float_logits.argmax(1) == teacher_logits.argmax(1)
    report = {"gate": gate.to_dict(), "passed": ok,
              "heldout_crops": len(val_crops), "data": w.run.data, "skipped": w.run.skipped,
              "calibration_data": w.run.calibration_data or w.run.data,
              "student": {"name": w.run.student.name, "input": w.run.student.size,
                          "agreement_with_teacher": float(np.mean(teacher_pred)),
                          **({"accuracy": float(np.mean(float_logits.argmax(1) == labels))}
                             if labels is not None else {})},
              "teacher": w.run.teacher.to_meta(), "artifacts": rows}
    if labelled is not None:
        report["labelled"] = labelled_evaluation(out, w, artifacts, labelled)
    write_json(out / "report.json", report)
    entries.append(file_entry(out / "report.json", "report"))
    write_manifest(out, entries, {"labels": w.run.classes, "student": w.run.student.name})
    return report, ok
