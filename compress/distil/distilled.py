"""What the distil stage left in a run folder, loaded for the stages after it (export, quantize,
validate): the run record, the gate's faces and the teacher's outputs for them, the FP32 student
and the train/held-out split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from motivnet_edge.compress.distil.data import CropSet, split_index
from motivnet_edge.compress.inference import predict
from motivnet_edge.compress.models.students import STUDENTS, build_student
from motivnet_edge.compress.runfolder import RunFolder, RunRecord
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.preprocess import CropSpec, FaceImage


@dataclass
class Distilled:
    """The distilled student and its faces. ``crops`` are the gate's domain: the calibration
    data when it was given, else the distillation data."""

    folder: RunFolder
    run: RunRecord
    crops: CropSet
    teacher_logits: np.ndarray
    model: torch.nn.Module
    train_idx: list[int]
    val_idx: list[int]
    distil_crops: CropSet  # the distillation faces (the same as ``crops`` unless calibrated)
    distil_train_idx: list[int]
    _val: tuple | None = field(default=None, init=False, repr=False)

    @property
    def spec(self) -> CropSpec:
        return CropSpec.from_dict(self.run.student_crop)

    def val(self) -> tuple[list[FaceImage], np.ndarray, np.ndarray, np.ndarray | None]:
        """The held-out crops, the FP32 student's and the teacher's output rows for them (class
        logits, then valence and arousal when the run has them: ``run.layout``), and their
        labels (None when unlabelled); the student is run once, on the first call."""
        if self._val is None:
            crops = [self.crops.crops[i] for i in self.val_idx]
            labels = np.asarray(self.crops.labels)[self.val_idx]
            self._val = (crops, predict(self.model, crops, self.spec),
                         self.teacher_logits[self.val_idx],
                         labels if labels.min() >= 0 else None)
        return self._val

    def base_meta(self) -> dict:
        """The metadata every artifact of this student carries: labels, teacher, student."""
        student, layout = self.run.student, self.run.layout
        heads = {"heads": layout.to_dict()} if layout.continuous else {}
        return {"task": "facial-emotion", "labels": self.run.classes, **heads,
                "teacher": self.run.teacher.to_meta(),
                "student": {"name": student.name, "timm": STUDENTS[student.name].timm,
                            "input": student.size, "weights": str(student.weights or "scratch"),
                            "sha256": sha256_file(self.folder.student_weights),
                            "parameters": sum(p.numel() for p in self.model.parameters())}}


def load_distilled(out: Path) -> Distilled:
    folder = RunFolder(out)
    run = folder.read_record()
    crops_path, teacher_path = folder.faces(bool(run.calibration_data))
    crops = CropSet.load(crops_path)
    weights = folder.student_weights
    if not weights.is_file():
        raise MotivnetError(f"{weights} is missing: the distil stage did not finish")
    model = build_student(run.student.name, len(run.classes), run.student.size,
                          ranges=run.layout.ranges)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    teacher = np.load(teacher_path)
    tr, va = split_index(crops.hashes, run.val_fraction)
    distil = CropSet.load(folder.faces(False)[0]) if run.calibration_data else crops
    return Distilled(folder, run, crops, teacher, model.eval(), tr, va, distil,
                     split_index(distil.hashes, run.val_fraction)[0])
