"""The compress stages' settings, each declared once (:func:`~motivnet_edge.compress.options.
setting`: default, help, flag and range together), the gate's thresholds, and the presets of
the two kinds of run. No torch: the command line builds its options, help and checks from
these declarations, and a run's record (:mod:`.runfolder`) stores them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from motivnet_edge.compress.options import flag_of, options, setting
from motivnet_edge.compress.registry import QAT_TARGETS


@dataclass
class DataConfig:
    """Where the face crops come from and how they are cut."""

    data: list[Path] = setting([], "image folder, image or video file (repeatable); no labels "
                               "needed")
    labelled: Path | None = setting(None, "class folders or a CSV of image,emotion")
    calibration: list[Path] = setting(
        [], "images or videos of the deployment domain (repeatable): INT8 is calibrated on "
        "their crops and gated on their held-out part", flag="calibration_data")
    synthetic: int = setting(1200, "synthetic faces when no data", low=8)
    every: int = setting(10, "sample every N-th video frame", low=1)
    margin: float = setting(0.15, "square crop margin around the face (not aligned crops)",
                            low=0)
    val_fraction: float = setting(0.12, "held-out share (the gate's crops)", above=0, below=1)
    detector: Path | None = setting(None, "a YuNet .onnx (default: the shipped YuNet)")
    cache: Path | None = setting(None, "teacher output cache (default: $MOTIVNET_CACHE, "
                                 "$XDG_CACHE_HOME/motivnet-edge or ~/.cache/motivnet-edge)",
                                 flag="cache_dir")

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

    epochs: int = setting(4, "epochs, at least", low=1, preset=True)
    min_steps: int = setting(0, "train at least this many optimizer steps (a small data set "
                             "gets more epochs)", low=0, preset=True)
    batch: int = setting(32, "batch size", low=2, preset=True)
    lr: float = setting(2e-3, "peak learning rate", above=0, preset=True, fmt="{:g}")
    weight_decay: float = setting(0.05, "AdamW's weight decay (decoupled, per step, scaled by "
                                  "the learning rate)", low=0, fmt="{:g}")
    decay_norms: bool = setting(True, "decay BatchNorm's scales and shifts and every bias "
                                "too (--no-decay-norms: only convolution and linear weights)",
                                preset=True)
    warmup_epochs: float = 0.5
    temperature: float = setting(4.0, "distillation temperature", above=0)
    alpha: float = setting(0.5, "weight of cross-entropy on labels", low=0)
    augment: float = setting(0.5, "augmentation strength S: turns up to 8xS degrees, zoom 6xS "
                             "%, shift 4xS %, colour jitter, blur and grey", low=0, high=3,
                             preset=True, fmt="{:g}")
    balance: float = setting(0.0, "draw batches with probability freq(teacher top-1)^-balance "
                             "(1: every class the teacher names drawn equally often)", low=0,
                             preset=True, fmt="{:g}")
    consistent: bool = setting(False, "run the teacher every step on the augmented view the "
                               "student sees, not its cached outputs for the plain face",
                               preset=True)
    mixup: float = setting(0.0, "share of each batch blended with another face (with "
                           "--consistent, the teacher labels the blend)", low=0, high=1,
                           preset=True, fmt="{:g}")
    cutmix: float = setting(0.0, "share of each batch given a square of another face at the "
                            "same place (up to half its area; with --consistent only: the "
                            "teacher labels the result)", low=0, high=1, preset=True, fmt="{:g}")
    warp: float = setting(0.0, "share of each batch given a random change of expression "
                          "(mouth corners, lower lip, brows moved; faces aligned on five "
                          "landmarks, with --consistent only: the teacher labels the result)",
                          low=0, high=1, preset=True, fmt="{:g}")
    boundary: float = setting(0.0, "share of each batch moved toward the student's own "
                              "decision boundary (one gradient step toward its runner-up "
                              "class, up to --boundary-step pixel levels) before the teacher "
                              "labels it (with --consistent only)", low=0, high=1, preset=True,
                              fmt="{:g}")
    boundary_step: float = setting(8.0, "the largest --boundary move of a pixel, in 0-255 "
                                   "levels (each view's uniform in 0 to this)", above=0,
                                   high=64, fmt="{:g}")
    hint: float = setting(0.0, "weight of matching the teacher's penultimate features with a "
                          "linear layer on the student's, dropped after training (an ONNX "
                          "teacher, with --consistent only)", low=0, preset=True, fmt="{:g}")
    top1: float = setting(0.0, "weight of cross-entropy on the teacher's top-1 class of each "
                          "view (its hard answer, on every face, beside the KL term: the "
                          "figure the rule selects on is top-1 agreement)", low=0, preset=True,
                          fmt="{:g}")
    dkd: float = setting(0.0, "decoupled KD (Zhao et al. 2022): the KL term split at the "
                         "teacher's top-1 into the top class against the rest and the other "
                         "classes among themselves, the latter weighted by this on every face "
                         "(0: plain KD, which weights it by 1 - the teacher's top probability)",
                         low=0, preset=True, fmt="{:g}")
    standardise: bool = setting(False, "distil on standardised logits (Sun et al. 2024): each "
                                "face's logits less their mean over their spread, student and "
                                "teacher alike; the student's logit scale is fitted to the "
                                "teacher's after training", preset=True)
    zoom: float = setting(0.0, "random resized crops: each view cut from a square of side "
                          "uniform in [1 - zoom, 1] of the face's, anywhere inside it (the "
                          "same for student and teacher)", low=0, below=1, preset=True,
                          fmt="{:g}")
    ema: float = setting(0.0, "decay per step of a moving average of the student's weights "
                         "(0: none); the selection rule picks it or the running weights at "
                         "the end", low=0, below=1, preset=True, fmt="{:g}")
    seed: int = setting(0, "random seed of the new weights, the batches and the augmentation "
                        "(the held-out split is by content hash, the same for every seed)")
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

    steps: int = setting(250, "quantization-aware fine-tuning steps before INT8 (the demo's "
                         "on synthetic faces; 0 turns it off)", flag="qat_steps", low=0,
                         preset=True)
    batch: int = 64
    lr: float = setting(2e-5, "its peak learning rate", flag="qat_lr", above=0)
    freeze: float = 0.7
    temperature: float = 2.0
    balance: float = 0.5
    augment: float = 0.5
    weight_bits: int = setting(7, "int8 weights in this many bits' range: 7 keeps ONNX "
                               "Runtime's u8s8 kernels on CPUs without VNNI from saturating "
                               "(stored as int8 either way)", flag="qat_weight_bits",
                               choices=(7, 8))
    target: str = setting("student", "what the quantised model learns to reproduce: the FP32 "
                          "student's own outputs (default; keeps the student) or the "
                          "teacher's cached outputs", flag="qat_target", choices=QAT_TARGETS)
    seed: int = 0


@dataclass
class QuantizeConfig:
    """The quantize stage's own settings."""

    calibration: int = setting(300, "face crops for INT8 calibration (training crops; never "
                               "the held-out ones)", low=1)


CALIBRATION_CROPS = QuantizeConfig.calibration


@dataclass(frozen=True)
class Gate:
    """An INT8 artifact passes when its top-1 agrees with its float source (the FP32 student,
    or the quantization-aware fine-tuned model it was exported from) on at least ``agreement``
    of the held-out crops the source decided (its top-2 logit margin at least the noise INT8
    adds to that margin, counted up to ``tie_margin``: :func:`motivnet_edge.compress.fidelity.
    decided`), its class probabilities stay within ``max_kl`` mean KL divergence of the source's
    on every crop, and it changes no decision that source was sure of: no flip where the
    source's top-2 logit margin exceeds ``max_flip_margin`` (1.0: its top class was e times as
    likely as the runner-up). The last rule catches an artifact that breaks a few inputs badly
    (seen: an NNCF IR flipping 4 of 513 crops held with margin 5); the first no longer counts
    a student's own near ties as quantisation error (a student of a soft teacher flipped 16 of
    944 held-out faces in INT8, every one at a float margin below 0.052); the KL rule sees
    damage on every face, ties included (good files: 0.0002-0.0006; an RKNN file ten times
    further from its source than ONNX Runtime's: 0.013). The evidence:
    docs/int8-and-the-gate.md.

    Continuous outputs (valence, arousal), where the artifact has them, must also stay within
    ``value_mae`` of the float source on average (in the output's own units: 0.05 is 2.5 % of
    the range -1..1) and keep a concordance correlation of at least ``value_ccc`` with it."""

    # above 1 nothing passes: every format keeps its best trial, rejected
    agreement: float = setting(0.99, "minimum agreement of an INT8 artifact with its float "
                               "source", flag="gate", above=0)
    max_flip_margin: float = setting(1.0, "an INT8 artifact may not change a decision its "
                                     "float source made with a top-2 logit margin above this",
                                     low=0)
    tie_margin: float = setting(0.5, "the most of a float source's top-2 logit margin the gate "
                                "counts as undecided: agreement is measured on the faces above "
                                "the INT8 noise on that margin, or above this when the noise is "
                                "larger", low=0)
    max_kl: float = setting(0.005, "the largest mean KL divergence (nats) of an INT8 artifact's "
                            "class probabilities from its float source's", above=0)
    value_mae: float = setting(0.05, "continuous outputs (valence, arousal): the largest mean "
                               "absolute error an INT8 artifact may have against its float "
                               "source", flag="max_value_error", above=0)
    value_ccc: float = setting(0.95, "continuous outputs: the smallest concordance correlation "
                               "with the float source", flag="min_value_ccc", low=-1, high=1)

    def passes(self, scores: dict) -> bool:
        return (decided_agreement(scores) >= self.agreement
                and scores.get("kl_from_float", 0.0) <= self.max_kl
                and flip_margin(scores) <= self.max_flip_margin
                and all(v["mae"] <= self.value_mae and v["ccc"] >= self.value_ccc
                        for v in scores.get("values", {}).values()))

    def rank(self, scores: dict) -> tuple:
        """Sort key: passing first, then higher agreement on decided faces, then smaller flip
        margins, then smaller errors of the continuous outputs."""
        return (self.passes(scores), decided_agreement(scores), -flip_margin(scores),
                -sum(v["mae"] for v in scores.get("values", {}).values()))

    def to_dict(self) -> dict:
        return {"agreement_with_float": self.agreement, "tie_margin": self.tie_margin,
                "max_kl_from_float": self.max_kl,
                "max_flip_float_margin": self.max_flip_margin,
                "values_max_mae": self.value_mae, "values_min_ccc": self.value_ccc}


def decided_agreement(scores: dict) -> float:
    """Agreement with the float source on the faces it decided (all faces in reports written
    before the gate told them apart)."""
    return scores.get("decided", {}).get("agreement", scores["agreement_with_float"])


def flip_margin(scores: dict) -> float:
    """The largest float-source margin of a flipped decision (``flip_max_fp32_margin`` in
    reports written before the float source could be the QAT model)."""
    return scores.get("flip_max_float_margin", scores.get("flip_max_fp32_margin", 0.0))


# Training settings by kind of run: the demo (the built-in teacher on synthetic faces, sized to
# finish in minutes; TrainConfig's defaults) and real faces (a real teacher on thousands of
# photos, an ImageNet student). ``qat_steps``: QAT's default for the kind of run.
PRESETS: dict[str, dict] = {
    "demo": {"qat_steps": 60},
    "real": {"epochs": 7, "batch": 64, "lr": 1e-3, "balance": 1.0, "augment": 2.0,
             "consistent": True, "mixup": 0.5, "qat_steps": QatConfig.steps},
}
# A patient student (Beyer et al. 2022: consistent teaching needs long schedules): real's
# recipe run for longer, with crops cut anywhere in the face and a moving average of the
# weights and twice real's peak rate (chosen by the held-out rule over 25 epochs) and no weight
# decay on BatchNorm and biases (chosen by the rule over 30); its length (30 epochs: the
# shipped student's recipe) and parts measured in benchmarks/results/patient-student.md.
PRESETS["patient"] = {**PRESETS["real"], "epochs": 30, "lr": 2e-3, "zoom": 0.2, "ema": 0.999,
                      "decay_norms": False}
# The training settings a preset fills: those declared with ``preset=True``.
PRESET_FIELDS = tuple(f.name for f, opt in options(TrainConfig) if opt.preset)


def resume_conflicts(saved: dict, cfg: TrainConfig) -> list[str]:
    """The training settings a checkpoint was made with (``saved``: its ``config``) that
    ``cfg`` changes, each as ``--flag: SAVED in the checkpoint, GIVEN now``: a run goes on
    only with the settings it started with (another --epochs or --batch would bend its
    schedule, another --seed its order), on any device."""
    flags = {f.name: flag_of(f, opt) for f, opt in options(TrainConfig)}
    return [f"{flags.get(name, name)}: {saved[name]!r} in the checkpoint, {value!r} now"
            for name, value in asdict(cfg).items()
            if name != "device" and name in saved and saved[name] != value]


def preset(kind: str) -> dict:
    """Every preset field's value for ``kind`` (demo, real or patient), TrainConfig's defaults
    filled."""
    base = {name: getattr(TrainConfig, name) for name in PRESET_FIELDS}
    return {**base, "qat_steps": 0, **PRESETS[kind]}


def preset_help(name: str, fmt: str = "{}", on_off: bool = False) -> str:
    """``demo 4, real 7``: the presets' values of one field, for the command line's help."""
    def show(value):
        return ("on" if value else "off") if on_off else fmt.format(value)
    key = "qat_steps" if name == "steps" else name
    return ", ".join(f"{kind} {show(preset(kind)[key])}" for kind in PRESETS)


@dataclass
class DistilConfig:
    """Everything the distil stage is told."""

    data: DataConfig
    student: StudentConfig
    train: TrainConfig
    resume: bool = False
    progress: bool = True
