"""The distil stage, the first of the compress chain's stages, which hand over through files in
the output folder (:mod:`motivnet_edge.compress.runfolder`):

``distil`` (crops, teacher outputs, student) -> ``export`` (FP32 ONNX, IR, TFLite) ->
``quantize`` (INT8 with fallback recipes, gated) -> ``validate`` (report.json, manifest.json).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.distil.augment import require_aligned
from motivnet_edge.compress.distil.boundary import require_same_cut
from motivnet_edge.compress.distil.data import MIRROR, CropSet, Mirrored, collect, split_index
from motivnet_edge.compress.distil.hints import Hinted, HintTeacher
from motivnet_edge.compress.distil.selection import held_out_halves
from motivnet_edge.compress.distil.standardise import fold_scale
from motivnet_edge.compress.distil.teacher_cache import TeacherCache
from motivnet_edge.compress.distil.train import train
from motivnet_edge.compress.distil.world import SINGLE, World
from motivnet_edge.compress.models.checkpoints import save_checkpoint
from motivnet_edge.compress.models.students import build_student, student_spec
from motivnet_edge.compress.models.teachers import Teacher
from motivnet_edge.compress.runfolder import RunFolder, RunRecord, TeacherRecord
from motivnet_edge.compress.settings import DistilConfig
from motivnet_edge.edge.detect import FaceDetector
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import write_json
from motivnet_edge.targets.preprocess import CropSpec

log = logging.getLogger(__name__)


def stage_distil(out: Path, teacher: Teacher, cfg: DistilConfig, world: World = SINGLE
                 ) -> list[dict]:
    """Faces, the teacher's outputs for them and their mirror images (one cached pass), and the
    trained student. ``cfg.data.calibration``: separate data (the deployment domain) whose faces
    calibrate INT8 and whose held-out part gates it. Nothing is written until the faces are
    found. With several processes (``world``) each finds faces in and teaches its share, all
    train one student together, and rank 0 writes the folder."""
    folder = RunFolder(out)
    spec = check_teaching(cfg, teacher.crop, f"teacher {teacher.path or 'built-in'}")
    hints = HintTeacher(teacher) if cfg.train.hint > 0 else None
    student = cfg.student
    crops, logits, mirrored = _teach(folder, teacher, cfg, world)
    if world.main:
        write_json(folder.record, _record(teacher, cfg, spec, crops).to_dict())
    tr, va = split_index(crops.hashes, cfg.data.val_fraction)
    if not va:
        raise MotivnetError(f"no held-out crops among {len(crops)}: raise --val-fraction")
    labels = np.asarray(crops.labels)
    torch.manual_seed(cfg.train.seed)  # the initial weights too (torch seeds itself randomly)
    layout = teacher.layout
    model = build_student(student.name, len(teacher.classes), student.size, student.weights,
                          layout.ranges)
    train_crops = Mirrored([crops.crops[i] for i in tr], originals=True)
    learner = Hinted(model, hints.width) if hints else model
    history = train(learner, spec, train_crops, np.concatenate([logits[tr], mirrored[tr]]),
                    np.concatenate([labels[tr], labels[tr]]),
                    [crops.crops[i] for i in va], logits[va], labels[va], cfg.train,
                    checkpoint=folder.checkpoint, resume=cfg.resume, progress=cfg.progress,
                    desc=f"distil {student.name}", teacher=hints or teacher, layout=layout,
                    world=world,
                    val_select=held_out_halves([crops.hashes[i] for i in va]))
    if cfg.train.standardise and history:
        history[-1]["logit_scale"] = fold_scale(model, train_crops, np.concatenate(
            [logits[tr], mirrored[tr]]), spec, layout, cfg.train.device)
    if world.main:
        folder.drop_verdict()
        save_checkpoint(model.state_dict(), folder.student_weights)
        write_json(folder.history, {"history": history})
    return history


def check_teaching(cfg: DistilConfig, crop: CropSpec, name: str) -> CropSpec:
    """The student's cut of the face for a teacher that cuts ``crop`` (named ``name``), the
    settings that teach on the student's views refused by name first where they cannot be: a
    warp of a teacher's unaligned cut, ``--hint`` or ``--boundary`` without ``--consistent``,
    a ``--boundary`` move of a cut the teacher does not share. Cheap: called before a demo
    teacher trains, and again by the stage."""
    train, student = cfg.train, cfg.student
    if train.warp > 0 and train.consistent:
        require_aligned(crop, name)
    for flag, value, why in (("--hint", train.hint, "the teacher's features are read on the "
                              "very views the student sees"),
                             ("--boundary", train.boundary, "the teacher labels each moved "
                              "view")):
        if value > 0 and not train.consistent:
            raise MotivnetError(f"{flag} needs --consistent: {why}")
    spec = student_spec(student.name, student.size, cfg.data.margin, crop)
    if train.boundary > 0:
        require_same_cut(spec, crop)
    return spec


def _teach(folder: RunFolder, teacher: Teacher, cfg: DistilConfig, world: World
           ) -> tuple[CropSet, np.ndarray, np.ndarray]:
    """The distillation faces and the teacher's outputs for them and their mirror images (and
    for the calibration faces), found, run through the cache and saved in the work folder."""
    data, progress = cfg.data, cfg.progress and world.main
    detector = FaceDetector(data.detector) if data.detector else None
    crops_path, teacher_path = folder.faces(calibrated=False)
    if cfg.resume and crops_path.is_file():
        crops = CropSet.load(crops_path)
    else:
        crops = collect(data.data, data.labelled, detector, data.every, data.synthetic,
                        cfg.train.seed, teacher.classes, progress, world, folder.work)
        if world.main:
            folder.work.mkdir(parents=True, exist_ok=True)
            crops.save(crops_path)
    calib = collect(data.calibration, None, detector, data.every, 0, cfg.train.seed,
                    teacher.classes, progress, world, folder.work) if data.calibration else None
    cache = TeacherCache(data.cache, teacher.key, world=world)
    logits = cache.logits(crops.hashes, crops.crops, teacher.predict, progress)
    mirrored = cache.logits([h + MIRROR for h in crops.hashes], Mirrored(crops.crops),
                            teacher.predict, progress, desc="teacher, mirrored")
    calib_logits = None if calib is None else \
        cache.logits(calib.hashes, calib.crops, teacher.predict, progress)
    if world.main:
        np.save(teacher_path, logits)
        np.save(folder.teacher_mirrored, mirrored)
        if calib is not None:
            calib_path, calib_teacher_path = folder.faces(calibrated=True)
            calib.save(calib_path)
            np.save(calib_teacher_path, calib_logits)
    return crops, logits, mirrored


def _record(teacher: Teacher, cfg: DistilConfig, spec: CropSpec, crops: CropSet) -> RunRecord:
    data, layout = cfg.data, teacher.layout
    return RunRecord(cfg.student, spec.to_dict(), data.margin, cfg.train.seed,
                     data.val_fraction, list(teacher.classes),
                     TeacherRecord(teacher.identity, teacher.key, teacher.spec.to_dict(),
                                   str(Path(teacher.path).resolve()) if teacher.path else ""),
                     cfg.train, data.describe(), dict(crops.skipped),
                     ", ".join(map(str, data.calibration)), str(data.cache),
                     layout.to_dict() if layout.continuous else None)
