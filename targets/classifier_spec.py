"""An exported classifier's conventions as data: the crop spec its input is made with, the order
of its classes, and whether it outputs logits or probabilities.

Any classifier (a teacher to distil from, a baseline to benchmark against) becomes usable
without code: a spec file (YAML or JSON), the name of one shipped in ``targets/specs/``
(``fer-mobilefacenet``), or ``motivnet`` (MotivNet's published preprocessing). A spec is right
when the model's own accuracy through this project's crop path matches its published figure;
``motivnet-edge validate`` measures it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.labels import AFFECTNET7, parse_label_list
from motivnet_edge.targets.preprocess import MOTIVNET_SPEC, CropSpec

SPECS_DIR = Path(__file__).resolve().parent / "specs"
CONTINUOUS = ("valence", "arousal")  # the continuous heads a spec may name
OUTPUT_KINDS = ("logits", "probabilities", "auto")
# the smallest probability taken as such: an int8 softmax output's 0 is below 1/256
PROB_FLOOR = 1e-4


@dataclass(frozen=True)
class Head:
    """A continuous output (valence or arousal): its index in the output row and its range."""

    index: int
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class OutputLayout:
    """Which numbers of an output row are what: the class outputs (indices, in label order)
    and the continuous ones (valence, arousal) with their index and range."""

    classes: tuple[int, ...]
    continuous: dict[str, Head] = field(default_factory=dict)

    @classmethod
    def parse(cls, labels: int, heads) -> OutputLayout:
        """From a spec's or an artifact's ``heads`` (None: ``labels`` class outputs only)."""
        return cls.of(labels, *_heads(heads))

    @classmethod
    def of(cls, labels: int, classes=(), continuous: dict[str, Head] | None = None
           ) -> OutputLayout:
        """``labels`` class outputs at ``classes`` (default: the first ``labels``) and the
        ``continuous`` ones, checked: one index per label, none used twice."""
        classes = tuple(classes) or tuple(range(labels))
        continuous = dict(continuous or {})
        if len(classes) != labels:
            raise MotivnetError(f"field 'heads.classes': {len(classes)} indices for {labels} "
                                f"labels")
        bad = next((k for k, h in continuous.items()
                    if k not in CONTINUOUS or not _index(h.index) or not h.low < h.high), None)
        if bad is not None:
            raise MotivnetError(f"field 'heads.{bad}': {continuous[bad]!r} needs an output "
                                f"index and a range low < high")
        used = [*classes, *(h.index for h in continuous.values())]
        if len(set(used)) != len(used):
            raise MotivnetError(f"field 'heads': an output index is used twice ({used})")
        return cls(classes, continuous)

    @classmethod
    def appended(cls, labels: int, ranges: dict[str, tuple[float, float]]) -> OutputLayout:
        """Our own students' rows: ``labels`` class logits, then each continuous output named in
        ``ranges`` (in :data:`CONTINUOUS` order) with its range."""
        names = [n for n in CONTINUOUS if n in ranges]
        return cls.of(labels, (), {n: Head(labels + i, *map(float, ranges[n]))
                                   for i, n in enumerate(names)})

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Each continuous output's (low, high), by name."""
        return {n: (h.low, h.high) for n, h in self.continuous.items()}

    @property
    def width(self) -> int:
        """How many numbers one output row holds, at least."""
        return 1 + max([*self.classes, *(h.index for h in self.continuous.values())])

    def to_dict(self) -> dict:
        """As metadata stores it: the class columns, then each continuous output's column and
        range."""
        return {"classes": list(self.classes), **{
            name: {"index": h.index, "range": [h.low, h.high]}
            for name, h in self.continuous.items()}}

    def columns(self, out: np.ndarray, index: list[int]) -> np.ndarray:
        """The columns ``index`` of raw output rows, as float32; an error naming the shape when the
        rows are too narrow for this layout."""
        out = np.asarray(out, np.float32)
        if out.ndim != 2 or out.shape[1] < self.width:
            raise MotivnetError(f"the classifier's output has shape {out.shape}; its spec "
                                f"reads {self.width} numbers a row")
        return out if index == list(range(out.shape[1])) else out[:, index]

    def class_outputs(self, out: np.ndarray) -> np.ndarray:
        """The class logits (or probabilities) of raw output rows, in label order."""
        return self.columns(out, list(self.classes))

    def values(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """The continuous outputs (valence, arousal) of raw output rows, by name, held to their
        declared ranges (an INT8 output's grid can reach one step past its range's end)."""
        return {name: np.clip(self.columns(out, [h.index])[:, 0], h.low, h.high)
                for name, h in ((n, self.continuous[n]) for n in CONTINUOUS
                                if n in self.continuous)}


@dataclass(frozen=True)
class ClassifierSpec:
    """labels: the classifier's classes in output order (canonical names); crop: how its input
    is made; outputs: ``logits``, ``probabilities`` (a softmax exported with the model) or
    ``auto`` (rows that are non-negative and sum to 1 are taken as probabilities).

    A model with several outputs in one row (HSEmotion's multi-task models: 8 class logits, then
    valence and arousal) names them: ``classes``, the indices of the class outputs in ``labels``
    order (default: the first ``len(labels)``), and ``continuous``, valence and/or arousal with
    their index and range."""

    labels: tuple[str, ...]
    crop: CropSpec = field(default_factory=CropSpec)
    outputs: str = "auto"
    classes: tuple[int, ...] = ()
    continuous: dict[str, Head] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(parse_label_list(list(self.labels))))
        if self.outputs not in OUTPUT_KINDS:
            raise MotivnetError(f"classifier spec field 'outputs': {self.outputs!r} is not one "
                                f"of {OUTPUT_KINDS}")
        layout = OutputLayout.of(len(self.labels), self.classes, self.continuous)
        object.__setattr__(self, "classes", layout.classes)

    @property
    def layout(self) -> OutputLayout:
        """Which numbers of an output row are the classes and which are continuous outputs."""
        return OutputLayout(self.classes, self.continuous)

    def to_dict(self) -> dict:
        """As a spec file or an artifact's metadata holds it (``heads`` only where the layout is not
        plain classes)."""
        out = {"labels": list(self.labels), "crop": self.crop.to_dict(),
               "outputs": self.outputs}
        if self.continuous or self.classes != tuple(range(len(self.labels))):
            out["heads"] = self.layout.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "classifier spec") -> ClassifierSpec:
        """A spec from its mapping, every field checked; errors name ``where`` and the field."""
        if not isinstance(data, dict):
            raise MotivnetError(f"{where}: expected a mapping, got {data!r}")
        unknown = set(data) - {"labels", "crop", "outputs", "heads"}
        if unknown:
            raise MotivnetError(f"{where}: unknown fields {sorted(map(str, unknown))} "
                                f"(known: labels, crop, outputs, heads)")
        if "labels" not in data:
            raise MotivnetError(f"{where}: 'labels' (the classes in output order) is required")
        labels = data["labels"]
        if not isinstance(labels, list) or not labels or \
                not all(isinstance(x, str) for x in labels):
            raise MotivnetError(f"{where}: 'labels' must be a list of class names, got "
                                f"{labels!r}")
        try:
            crop = CropSpec.from_dict(data.get("crop") or {})
            classes, continuous = _heads(data.get("heads"))
            return cls(tuple(data["labels"]), crop, data.get("outputs", "auto"), classes,
                       continuous)
        except MotivnetError as exc:
            raise MotivnetError(f"{where}: {exc}") from exc

    def logits(self, out: np.ndarray) -> np.ndarray:
        """Logits from the classifier's raw outputs (its class outputs, when it has others):
        probabilities (told, or detected under ``auto``) become log-probabilities, logits up to
        a constant per row. Distilling at temperature T on probabilities would soften numbers
        in [0, 1] to near-uniform targets."""
        out = self.layout.class_outputs(out)
        probs = self.outputs == "probabilities" or (
            self.outputs == "auto" and out.size and out.min() >= 0
            and np.allclose(out.sum(1), 1.0, atol=0.05))
        return np.log(np.maximum(out, PROB_FLOOR)).astype(np.float32) if probs else out

    def values(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """The continuous outputs (valence, arousal) of raw output rows, by name."""
        return self.layout.values(out)


def _heads(heads) -> tuple[tuple[int, ...], dict[str, Head]]:
    """``heads`` of a spec file: class indices and continuous outputs, checked."""
    if heads is None:
        return (), {}
    if not isinstance(heads, dict) or set(heads) - {"classes", *CONTINUOUS}:
        raise MotivnetError(f"field 'heads': {heads!r} is not a mapping of classes, valence, "
                            f"arousal")
    classes = heads.get("classes", [])
    if not isinstance(classes, list) or not all(_index(i) for i in classes):
        raise MotivnetError(f"field 'heads.classes': {classes!r} is not a list of output "
                            f"indices")
    continuous = {}
    for name in CONTINUOUS:
        h = heads.get(name)
        if h is None:
            continue
        rng = h.get("range", [-1.0, 1.0]) if isinstance(h, dict) else None
        if not (isinstance(h, dict) and _index(h.get("index")) and isinstance(rng, list)
                and len(rng) == 2 and all(_number(v) for v in rng) and rng[0] < rng[1]):
            raise MotivnetError(f"field 'heads.{name}': {h!r} needs index (an output index) "
                                f"and range [low, high]")
        continuous[name] = Head(h["index"], float(rng[0]), float(rng[1]))
    return tuple(classes), continuous


def _index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 4096


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def motivnet_spec() -> ClassifierSpec:
    """MotivNet as published (:data:`MOTIVNET_SPEC`, AffectNet-7 order, logits)."""
    return ClassifierSpec(AFFECTNET7, MOTIVNET_SPEC, "logits")


def builtin_specs() -> list[str]:
    """The names of the specs shipped in the package (``--teacher-spec NAME``)."""
    return sorted(["motivnet", *(p.stem for p in SPECS_DIR.glob("*.yaml"))])


def load_spec(name_or_path: str | Path) -> ClassifierSpec:
    """A spec file (``.yaml``/``.yml``/``.json``) or the name of a shipped one."""
    if str(name_or_path) == "motivnet" and not _is_file(Path("motivnet")):
        return motivnet_spec()
    path = Path(name_or_path)
    if not _is_file(path):
        shipped = SPECS_DIR / f"{name_or_path}.yaml"
        if not _is_file(shipped):
            raise MotivnetError(f"classifier spec {str(name_or_path)[:200]} is neither a file "
                                f"nor one of the shipped specs ({', '.join(builtin_specs())})")
        path = shipped
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MotivnetError(f"classifier spec {path} is not UTF-8 text (byte {exc.start})") \
            from exc
    except OSError as exc:
        raise MotivnetError(f"classifier spec {path} cannot be read: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # YAML or JSON syntax
        raise MotivnetError(f"classifier spec {path} cannot be parsed: {exc}") from exc
    return ClassifierSpec.from_dict(data, f"classifier spec {path}")


def _is_file(path: Path) -> bool:
    """Path.is_file, False for a name the system cannot even look up (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
