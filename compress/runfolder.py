"""The compress chain's output folder, owned here: every path in it, the run record the distil
stage writes (``work/run.json``), the stage configurations with each default written once, and
the presets of the two kinds of run. No torch: the command line builds its help text from these
defaults, and ``bench`` and a device read a run's record through this module.

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
    synthetic: int = 1200
    every: int = 10
    margin: float = 0.15
    val_fraction: float = 0.12
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
class TrainConfig:
    """Distillation (:func:`motivnet_edge.compress.distil.train.train`). The defaults are the
    demo's; :data:`PRESETS` says what a real run changes."""

    epochs: int = 4
    min_steps: int = 0
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    temperature: float = 4.0
    alpha: float = 0.5
    augment: float = 0.5
    balance: float = 0.0
    consistent: bool = False
    mixup: float = 0.0
    seed: int = 0
    device: str = "cpu"


@dataclass
class QatConfig:
    """Quantization-aware fine-tuning (:mod:`motivnet_edge.compress.int8.qat`).

    steps: fine-tuning steps (0: no QAT; the default is the preset's); observers stop updating
    after ``freeze`` of them; lr: peak learning rate (cosine to 0); temperature and balance as
    in distillation; weight_bits: int8 weights kept in 7 bits' range (ONNX Runtime's u8s8
    kernels on CPUs without VNNI saturate otherwise) or 8; target: what the quantised model
    learns to reproduce: ``student``, the FP32 student's own outputs on each step's batch, or
    ``teacher``, the teacher's cached outputs."""

    steps: int = 250
    batch: int = 64
    lr: float = 2e-5
    freeze: float = 0.7
    temperature: float = 2.0
    balance: float = 0.5
    augment: float = 0.5
    weight_bits: int = 7
    target: str = "student"
    seed: int = 0


@dataclass(frozen=True)
class Gate:
    """An INT8 artifact passes when its top-1 agrees with its float source (the FP32 student,
    or the quantization-aware fine-tuned model it was exported from) on at least ``agreement``
    of the held-out crops and it changes no decision that source was sure of: no flip where
    the source's top-2 logit margin exceeds ``max_flip_margin`` (1.0: its top class was e
    times as likely as the runner-up). The second rule catches an artifact that breaks a few
    inputs badly (seen: an NNCF IR flipping 4 of 513 crops held with margin 5) while the first
    alone would let it through.

    Continuous outputs (valence, arousal), where the artifact has them, must also stay within
    ``value_mae`` of the float source on average (in the output's own units: 0.05 is 2.5 % of
    the range -1..1) and keep a concordance correlation of at least ``value_ccc`` with it."""

    agreement: float = 0.99
    max_flip_margin: float = 1.0
    value_mae: float = 0.05
    value_ccc: float = 0.95

    def passes(self, scores: dict) -> bool:
        return (scores["agreement_with_float"] >= self.agreement
                and flip_margin(scores) <= self.max_flip_margin
                and all(v["mae"] <= self.value_mae and v["ccc"] >= self.value_ccc
                        for v in scores.get("values", {}).values()))

    def rank(self, scores: dict) -> tuple:
        """Sort key: passing first, then higher agreement, then smaller flip margins, then
        smaller errors of the continuous outputs."""
        return (self.passes(scores), scores["agreement_with_float"], -flip_margin(scores),
                -sum(v["mae"] for v in scores.get("values", {}).values()))

    def to_dict(self) -> dict:
        return {"agreement_with_float": self.agreement,
                "max_flip_float_margin": self.max_flip_margin,
                "values_max_mae": self.value_mae, "values_min_ccc": self.value_ccc}


def flip_margin(scores: dict) -> float:
    """The largest float-source margin of a flipped decision (``flip_max_fp32_margin`` in
    reports written before the float source could be the QAT model)."""
    return scores.get("flip_max_float_margin", scores.get("flip_max_fp32_margin", 0.0))


CALIBRATION_CROPS = 300  # training crops INT8 is calibrated on (never the held-out ones)

# Training settings by kind of run: the demo (the built-in teacher on synthetic faces, sized to
# finish in minutes; TrainConfig's defaults) and real faces (a real teacher on thousands of
# photos, an ImageNet student). ``qat_steps``: QAT's default for the kind of run.
PRESETS: dict[str, dict] = {
    "demo": {"qat_steps": 60},
    "real": {"epochs": 7, "batch": 64, "lr": 1e-3, "balance": 1.0, "augment": 2.0,
             "consistent": True, "mixup": 0.5, "qat_steps": QatConfig.steps},
}
PRESET_FIELDS = ("epochs", "min_steps", "batch", "lr", "balance", "augment", "consistent",
                 "mixup")


def preset(kind: str) -> dict:
    """Every preset field's value for ``kind`` (demo or real), TrainConfig's defaults filled."""
    base = {name: getattr(TrainConfig, name) for name in PRESET_FIELDS}
    return {**base, "qat_steps": 0, **PRESETS[kind]}


def preset_help(name: str, fmt: str = "{}", on_off: bool = False) -> str:
    """``demo 4, real 7``: the presets' values of one field, for the command line's help."""
    def show(value):
        return ("on" if value else "off") if on_off else fmt.format(value)
    return ", ".join(f"{kind} {show(preset(kind)[name])}" for kind in PRESETS)


def qat_steps_for(record: RunRecord) -> int:
    """QAT's default steps for a distilled run: the demo's on synthetic faces, else real's."""
    return preset("demo" if record.data == "synthetic" else "real")["qat_steps"]


@dataclass
class DistilConfig:
    data: DataConfig
    student: StudentConfig
    train: TrainConfig
    resume: bool = False
    progress: bool = True


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
