"""Typed configuration of the compress stages: what the command line asks for, passed whole to
the stages, and what the distil stage records in ``work/run.json`` for the stages after it."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from motivnet_edge.compress.train import TrainConfig
from motivnet_edge.targets.errors import MotivnetError


@dataclass
class DataConfig:
    """Where the face crops come from and how they are cut.

    data: image folders, images or videos (no labels needed); labelled: class folders or a CSV;
    calibration: the deployment domain's images (INT8 is calibrated and gated on their crops);
    synthetic: generated faces when nothing is given; every: the N-th video frame;
    margin: crop margin around a box; val_fraction: held-out share, split by content hash;
    detector: a YuNet file (None: the default detector); cache: the teacher output cache root.
    """

    data: list[Path] = field(default_factory=list)
    labelled: Path | None = None
    calibration: list[Path] = field(default_factory=list)
    synthetic: int = 2400
    every: int = 10
    margin: float = 0.15
    val_fraction: float = 0.2
    detector: Path | None = None
    cache: Path | None = None

    def describe(self) -> str:
        return ", ".join(map(str, [*self.data, self.labelled or ""])).strip(", ") or "synthetic"


@dataclass
class StudentConfig:
    """A registered student (:data:`motivnet_edge.compress.registry.STUDENTS`), its square input
    side, and the ImageNet weights it starts from: ``imagenet`` (the installed weights
    package), a local state dict file, or None (from scratch)."""

    name: str
    size: int
    weights: str | None = None  # "imagenet", a file, or None


@dataclass
class DistilConfig:
    data: DataConfig
    student: StudentConfig
    train: TrainConfig
    resume: bool = False
    progress: bool = True


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
class RunConfig:
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

    def to_dict(self) -> dict:
        return asdict(self, dict_factory=lambda kv: {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in kv})

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        return _build(cls, data)


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
