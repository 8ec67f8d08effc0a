"""The compress chain as stages that hand over through files in the output folder.

``distil`` (crops, teacher outputs, student) -> ``export`` (FP32 ONNX, IR, TFLite) ->
``quantize`` (INT8 with fallback recipes, gated) -> ``validate`` (report.json, manifest.json).
State lives in ``OUT/work/``; artifacts, report and manifest in ``OUT/``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.checkpoints import save_checkpoint
from motivnet_edge.compress.config import DistilConfig, RunConfig, TeacherRecord
from motivnet_edge.compress.data import (
    MIRROR,
    CropSet,
    Mirrored,
    collect,
    gate_files,
    split_index,
)
from motivnet_edge.compress.export import export_fp32
from motivnet_edge.compress.students import STUDENTS, build_student, student_spec
from motivnet_edge.compress.teacher_cache import TeacherCache
from motivnet_edge.compress.teachers import Teacher
from motivnet_edge.compress.train import predict, train
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file, write_json
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
    spec = student_spec(student.name, student.size, data.margin, teacher.crop)
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
    torch.manual_seed(cfg.train.seed)  # the initial weights too (torch seeds itself randomly)
    model = build_student(student.name, len(teacher.classes), student.size, student.weights)
    train_crops = Mirrored([crops.crops[i] for i in tr], originals=True)
    history = train(model, spec, train_crops, np.concatenate([logits[tr], mirrored[tr]]),
                    np.concatenate([labels[tr], labels[tr]]),
                    [crops.crops[i] for i in va], logits[va], labels[va], cfg.train,
                    checkpoint=work / "student.ckpt", resume=cfg.resume, progress=progress,
                    desc=f"distil {student.name}", teacher=teacher)
    save_checkpoint(model.state_dict(), Path(out) / STUDENT_WEIGHTS)
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
    distil_crops: CropSet  # the distillation faces (the same as ``crops`` unless calibrated)
    distil_train_idx: list[int]

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
    distil = CropSet.load(gate_files(work_dir(out), False)[0]) if run.calibration_data \
        else crops
    return Work(run, crops, teacher, model.eval(), tr, va, distil,
                split_index(distil.hashes, run.val_fraction)[0])


def stage_export(out: Path) -> dict[str, Path]:
    w = load_work(out)
    return export_fp32(w.model, w.spec, Path(out), w.base_meta(out))
