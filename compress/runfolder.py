"""The compress chain's output folder, owned here: every path in it and the run record the
distil stage writes (``work/run.json``). No torch: ``bench`` and a device read a run's record
through this module. The stage settings it records are :mod:`.settings`'.

Layout of ``OUT/``::

    student-{fp32,int8}.{onnx,xml,bin,tflite}   artifacts (and *.rejected.* kept for inspection)
    student.pth                                  the FP32 student's state dict
    report.json, manifest.json                   the gate's verdict and every file's sha256
    work/run.json                                the run record (:class:`RunRecord`)
    work/crops.npz, work/teacher.npy             the distillation faces and the teacher's outputs
    work/teacher-mirrored.npy                    the teacher's outputs for their mirror images
    work/calib.npz, work/calib_teacher.npy       the --calibration-data faces, when given
    work/student.ckpt, work/history.json         the training checkpoint and its history
    work/qat/                                    the quantization-aware fine-tuned INT8 graphs
    work/quantize.json                           every INT8 recipe tried, per format
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from motivnet_edge.compress.settings import StudentConfig, TrainConfig, preset
from motivnet_edge.targets.errors import MotivnetError

# ---- paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFolder:
    """The paths of one compress output folder."""

    out: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))

    @property
    def work(self) -> Path:
        return self.out / "work"

    @property
    def record(self) -> Path:
        return self.work / "run.json"

    @property
    def student_weights(self) -> Path:
        return self.out / "student.pth"

    @property
    def report(self) -> Path:
        return self.out / "report.json"

    @property
    def manifest(self) -> Path:
        return self.out / "manifest.json"

    @property
    def teacher_mirrored(self) -> Path:
        return self.work / "teacher-mirrored.npy"

    @property
    def checkpoint(self) -> Path:
        return self.work / "student.ckpt"

    @property
    def history(self) -> Path:
        return self.work / "history.json"

    @property
    def qat(self) -> Path:
        return self.work / "qat"

    @property
    def quantize_results(self) -> Path:
        return self.work / "quantize.json"

    def drop_verdict(self) -> None:
        """report.json and manifest.json removed before a stage rewrites the files they
        describe (a stale manifest would refuse the new files as changed), said in one line."""
        stale = [p for p in (self.manifest, self.report) if p.is_file()]
        for p in stale:
            p.unlink()
        if stale:
            print(f"{self.out}: removed {', '.join(p.name for p in stale)}, which describe the "
                  f"files being replaced; run 'motivnet-edge validate --out {self.out}' after")

    def faces(self, calibrated: bool) -> tuple[Path, Path]:
        """The crops and teacher outputs INT8 is calibrated and gated on: the
        --calibration-data's when it was given, else the distillation data's."""
        return ((self.work / "calib.npz", self.work / "calib_teacher.npy") if calibrated
                else (self.work / "crops.npz", self.work / "teacher.npy"))

    def read_record(self) -> RunRecord:
        if not self.record.is_file():
            raise MotivnetError(f"{self.record} is missing: run 'motivnet-edge distil --out "
                                f"{self.out}' first")
        try:
            return RunRecord.from_dict(json.loads(self.record.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise MotivnetError(f"{self.record}: not a run record ({exc}); run the distil "
                                f"stage again") from exc


# ---- stage configurations ------------------------------------------------------------------


# ---- the run record ------------------------------------------------------------------------


@dataclass
class TeacherRecord:
    """The teacher as the artifacts record it: identity (kind, file, sha256), cache key and its
    classifier spec (crop spec, class order, output kind); and where its file was, so later
    stages can run it again (on labelled faces)."""

    identity: dict
    key: str
    spec: dict
    path: str = ""

    def to_meta(self) -> dict:
        return {**self.identity, "key": self.key, "crop": self.spec["crop"],
                "labels": self.spec["labels"]}


@dataclass
class RunRecord:
    """Everything later stages need to know about the distillation, saved as work/run.json."""

    student: StudentConfig
    student_crop: dict
    margin: float
    seed: int
    val_fraction: float
    classes: list[str]
    teacher: TeacherRecord
    train: TrainConfig
    data: str = "synthetic"
    skipped: dict = field(default_factory=dict)
    calibration_data: str = ""
    teacher_cache: str = ""
    heads: dict | None = None  # the student's continuous outputs too (OutputLayout.to_dict)

    @property
    def layout(self):
        """The student's output rows (:class:`~motivnet_edge.targets.classifier_spec.
        OutputLayout`): its class logits, and valence/arousal after them when it learnt them."""
        from motivnet_edge.targets.classifier_spec import OutputLayout

        return OutputLayout.parse(len(self.classes), self.heads)

    def to_dict(self) -> dict:
        return asdict(self, dict_factory=lambda kv: {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in kv})

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        return _build(cls, data)


def qat_steps_for(record: RunRecord) -> int:
    """QAT's default steps for a distilled run: the demo's on synthetic faces, else real's."""
    return preset("demo" if record.data == "synthetic" else "real")["qat_steps"]


def _build(cls, data: dict):
    """A dataclass from the plain dict :func:`dataclasses.asdict` made of it."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise MotivnetError(f"{cls.__name__}: unknown fields {sorted(unknown)} (written by "
                            f"another version of motivnet-edge? run the distil stage again)")
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value)
        elif hint in (Path, Path | None) and value is not None:
            value = Path(value)
        values[key] = value
    return cls(**values)
