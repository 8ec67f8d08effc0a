"""The narrow engine interface and the registry of engines.

An engine loads one artifact, describes its input, runs a batch and closes. Each engine lives in
its own small file under ``targets/engines/`` and imports its runtime inside ``load`` only, so
this package imports on any device; a missing runtime names the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import format_of, get_format
from motivnet_edge.targets.metadata import check_manifest, output_spec, read_metadata
from motivnet_edge.targets.preprocess import CropSpec, check_cut

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineEntry:
    """module: the file under ``targets/engines/`` that defines ``ENGINE`` (or a full dotted
    module path, for an engine that lives elsewhere); formats: the formats it opens; extra: the
    pip extra that installs its runtime; runtimes: the runtime's import names."""

    module: str
    formats: tuple[str, ...]
    extra: str
    runtimes: tuple[str, ...]


ENGINES: dict[str, EngineEntry] = {
    "onnxruntime": EngineEntry("onnxruntime", ("onnx",), "onnx", ("onnxruntime",)),
    "openvino": EngineEntry("openvino", ("openvino", "onnx"), "openvino", ("openvino",)),
    "litert": EngineEntry("litert", ("tflite",), "tflite", ("ai_edge_litert", "tflite_runtime")),
    "rknn": EngineEntry("rknn", ("rknn",), "rknn", ("rknnlite",)),
}


def runtime_installed(engine: str) -> bool:
    """True when one of ``engine``'s runtimes can be imported here (nothing is imported)."""
    return any(importlib.util.find_spec(r) for r in ENGINES[engine].runtimes)


def engines_for(fmt: str) -> list[str]:
    """Every engine that opens a file of format ``fmt``, its default engine first."""
    others = [name for name, e in ENGINES.items() if fmt in e.formats]
    default = get_format(fmt).engine
    return [default, *(n for n in others if n != default)]


def engine_for_file(path: Path, engine: str | None, what: str) -> str:
    """The engine to run ``path`` in: ``engine`` when it opens the file's format, the format's
    own when None; an error naming ``what`` and the engines that would otherwise."""
    fmt = format_of(path)
    if engine is None:
        return fmt.engine
    if engine not in engines_for(fmt.name):
        raise MotivnetError(f"{what}: engine {engine} cannot run a {fmt.name} file (it runs in "
                            f"{', '.join(engines_for(fmt.name))})")
    return engine


@dataclass
class InputInfo:
    """What the loaded artifact expects: shape (batch axis first; -1 when dynamic), dtype,
    and the crop spec from its metadata."""

    shape: tuple[int, ...]
    dtype: str
    crop: CropSpec
    dynamic_batch: bool


@dataclass(frozen=True)
class NoExtra:
    """The options of an engine that has none of its own."""


@dataclass
class EngineOptions:
    """Options common to engines; an engine's own go in ``extra``, an instance of its ``Extra``
    dataclass (None: its defaults)."""

    device: str = "CPU"  # each engine's ``devices``, in any case
    threads: int | None = None
    cache_dir: str | None = None
    precision: str | None = None  # openvino INFERENCE_PRECISION_HINT, tensorrt fp16/int8
    extra: object | None = None


class Engine:
    """Base of every engine: metadata, manifest check, batching and warm-up live here once.

    An engine declares what it knows: ``devices`` (every device it can use, best first; the
    first is its default), ``Extra`` (its own options, typed), ``devices_here`` (which of them
    this host gives it) and ``device_label`` (what a message calls a device)."""

    name = "engine"
    devices: tuple[str, ...] = ("cpu",)
    Extra: type = NoExtra

    @classmethod
    def devices_here(cls) -> list[str] | None:
        """The devices this host gives the engine, best first; None when its runtime is not
        installed. Probes only: the runtime is imported by engines that must ask it."""
        return [cls.devices[0]] if runtime_installed(cls.name) else None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the engine cannot run here when its runtime is installed but something it needs
        from elsewhere is not (a vendor library); None otherwise."""
        return None

    @classmethod
    def device_label(cls, device: str) -> str:
        """What a message calls ``device`` (ONNX Runtime: the execution provider)."""
        return device

    def __init__(self, path: str | Path, options: EngineOptions | None = None,
                 check: bool = True, warmup: bool = True, metadata: dict | None = None) -> None:
        """``metadata`` stands in for the embedded one, for foreign files that carry none."""
        self.path = Path(path)
        self.options = options or EngineOptions()
        self.extra = self.options.extra if self.options.extra is not None else self.Extra()
        if not isinstance(self.extra, self.Extra):
            raise MotivnetError(f"{self.name} takes its own options as {self.Extra.__name__}, "
                                f"not {type(self.extra).__name__}")
        # the manifest first: a truncated copy is named as such, not by a parser's complaint
        self.sha256 = check_manifest(self.path) if check else None
        self.metadata = metadata if metadata is not None else read_metadata(self.path)
        self.labels: list[str] = list(self.metadata["labels"])
        self.crop = CropSpec.from_dict(self.metadata["crop"])
        self.outputs = output_spec(self.metadata)  # which numbers of a row are what
        check_cut(self.crop, f"artifact {self.path}")  # refused now, not at the first face
        try:
            self.input = self._load()
        except (MotivnetError, ImportError):
            raise
        except Exception as exc:  # the runtime refused the file
            raise MotivnetError(f"{self.name} cannot load {self.path}: truncated, corrupt or "
                                f"not a model it runs ({type(exc).__name__}: "
                                f"{(str(exc).splitlines() or [''])[0][:160]})") from exc
        self.settings: dict = getattr(self, "settings", {})
        if warmup:
            self.run(np.zeros((1, *self.input.shape[1:]), self.input.dtype)
                     if all(d > 0 for d in self.input.shape[1:])
                     else np.zeros(self.crop.input_shape, self.crop.dtype))

    def _load(self) -> InputInfo:  # pragma: no cover - each engine implements it
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a batch made by
        :func:`motivnet_edge.targets.preprocess.make_batch` or ``make_inputs``."""
        return self.run_with_values(batch)[0]

    def run_with_values(self, batch: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits (N, classes) and, for an artifact whose metadata names them, its continuous
        outputs by name (valence, arousal: (N,) each)."""
        rows = self.run_raw(batch)
        return self.outputs.class_outputs(rows), self.outputs.values(rows)

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """The model's whole output rows, every number it gives (a foreign classifier read
        through its own spec wants them all)."""
        if batch.shape[1:] != tuple(self.input.shape[1:]):
            raise MotivnetError(f"{self.path}: batch of shape {batch.shape[1:]} does not match "
                                f"the input {tuple(self.input.shape[1:])}")
        if len(batch) == 0:
            return np.zeros((0, self.outputs.width), np.float32)
        if self.input.dynamic_batch or len(batch) == 1:
            return self._run(batch)
        return np.concatenate([self._run(batch[i:i + 1]) for i in range(len(batch))])

    def close(self) -> None:
        """Let the runtime go (the engine cannot run afterwards)."""
        pass

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def engine_class(name: str) -> type[Engine]:
    """The class of engine ``name`` (its module imported; its runtime is not, until load)."""
    if name not in ENGINES:
        raise MotivnetError(f"unknown engine {name!r}; known: {sorted(ENGINES)}")
    entry = ENGINES[name]
    try:
        module = entry.module if "." in entry.module else \
            f"motivnet_edge.targets.engines.{entry.module}"
        return importlib.import_module(module).ENGINE
    except ImportError as exc:
        raise MotivnetError(f"engine {name!r} needs {exc.name}: "
                            f"pip install 'motivnet-edge[{entry.extra}]'") from exc


def load_engine(path: str | Path, engine: str | None = None,
                options: EngineOptions | None = None, check: bool = True) -> Engine:
    """Open ``path`` in ``engine`` (default: the format's own engine)."""
    fmt = format_of(path)
    engine = engine or fmt.engine
    if engine in ENGINES and fmt.name not in ENGINES[engine].formats:
        raise MotivnetError(f"engine {engine!r} cannot run {fmt.name} artifact {path}")
    return engine_class(engine)(path, options, check=check)


def load_engine_with_metadata(path: str | Path, metadata: dict,
                              options: EngineOptions | None = None,
                              engine: str | None = None) -> Engine:
    """Open a foreign file (a teacher exported elsewhere) that carries no metadata of ours."""
    return engine_class(engine or format_of(path).engine)(path, options, check=False,
                                                          metadata=metadata)


def join_outputs(outputs) -> np.ndarray:
    """A model's outputs as one row per input, in their order (a class head, then a values
    head), each as float32."""
    outs = [np.asarray(o, np.float32) for o in outputs]
    if len(outs) == 1:
        return outs[0]
    return np.concatenate([o.reshape(len(o), -1) for o in outs], 1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities of logits along the last axis (max subtracted first)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, in nats, from two models' logits (temperature 1)."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities of logits along the last axis (max subtracted first, so large logits do not
    overflow)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
