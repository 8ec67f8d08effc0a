"""Measuring one model the same way whatever it is: an artifact in an engine, an exported
classifier, or a torch model. A :class:`Runner` loads, makes its inputs from stored faces with
the one crop function, gives logits in the project's class order, and runs a prepared batch
for timing. :func:`time_runners` times many side by side, interleaved round by round, so a
noisy machine slows every row alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from motivnet_edge.targets.engine import Engine, EngineOptions, load_engine
from motivnet_edge.targets.labels import AFFECTNET7, reorder_index
from motivnet_edge.targets.preprocess import CropSpec, FaceImage, make_inputs


@dataclass
class Runner:
    """load() -> the model; predict(batch) -> raw outputs; ``spec`` makes its inputs;
    ``labels`` is its output order; ``to_logits`` turns outputs into logits, ``to_values``
    into its continuous outputs (valence, arousal) by name, where it has them."""

    load: Callable[[], object]
    spec: CropSpec
    labels: Sequence[str]
    predict: Callable[[np.ndarray], np.ndarray] = field(default=None)  # set by open()
    to_logits: Callable[[np.ndarray], np.ndarray] = lambda out: out
    to_values: Callable[[np.ndarray], dict] = lambda out: {}
    close: Callable[[], None] = lambda: None
    settings: dict = field(default_factory=dict)
    load_s: float = 0.0
    batching: bool = True
    path: str = ""
    whole: bool = False  # every face in one call (a simulator that builds the model per call)

    def open(self) -> Runner:
        t0 = time.perf_counter()
        self.load()
        self.load_s = time.perf_counter() - t0
        return self

    def logits(self, faces: Sequence[FaceImage], classes: Sequence[str] = AFFECTNET7,
               batch: int = 32) -> np.ndarray:
        return self.outputs(faces, classes, batch)[0]

    def outputs(self, faces: Sequence[FaceImage], classes: Sequence[str] = AFFECTNET7,
                batch: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits in ``classes`` order and the continuous outputs by name."""
        index = reorder_index(self.labels, classes)
        batch = max(len(faces), 1) if self.whole else batch
        raw = [self.predict(make_inputs(faces[i:i + batch], self.spec))
               for i in range(0, len(faces), batch)]
        if not raw:
            return np.zeros((0, len(classes))), {}
        values = [self.to_values(r) for r in raw]
        return (np.concatenate([self.to_logits(r) for r in raw])[:, index],
                {k: np.concatenate([v[k] for v in values]) for k in values[0]})


def engine_runner(path, engine: str | None, options: EngineOptions, metadata: dict | None = None,
                  check: bool = True, to_logits=None, to_values=None) -> Runner:
    """An artifact (or, with ``metadata``, a foreign file read through its spec's
    ``to_logits`` and ``to_values``) in one engine."""
    from motivnet_edge.targets.engine import load_engine_with_metadata
    from motivnet_edge.targets.metadata import read_metadata

    meta = metadata or read_metadata(path)
    runner = Runner(load=lambda: None, spec=CropSpec.from_dict(meta["crop"]),
                    labels=meta["labels"], path=str(path))
    def load() -> Engine:
        eng = load_engine_with_metadata(path, meta, options, engine) if metadata else \
            load_engine(path, engine, options, check=check)
        # whole output rows, read through the spec of a foreign file, else the artifact's own
        # output layout (class logits, then valence and arousal where its metadata names them)
        runner.predict = eng.run_raw
        runner.to_logits = to_logits or eng.outputs.class_outputs
        runner.to_values = to_values or eng.outputs.values
        runner.close = eng.close
        runner.spec, runner.settings = eng.crop, {"engine": eng.name, **eng.settings}
        runner.batching = eng.input.dynamic_batch
        return eng

    runner.load = load
    return runner


@dataclass
class Timing:
    """Per-face latency at batch 1 (p50, p95, p99 over every run; the spread of the per-round
    medians shows how noisy the machine was) and faces per second at batch 8."""

    p50: float
    p95: float
    p99: float
    spread: tuple[float, float]
    runs: int
    throughput_b8: float | None = None

    def to_dict(self) -> dict:
        return {"p50_ms": round(self.p50, 3), "p95_ms": round(self.p95, 3),
                "p99_ms": round(self.p99, 3),
                "p50_spread_ms": [round(self.spread[0], 3), round(self.spread[1], 3)],
                "timed_runs": self.runs,
                "throughput_b8": None if self.throughput_b8 is None
                else round(self.throughput_b8, 1)}


def time_runners(runners: dict[str, Runner], faces: Sequence[FaceImage], rounds: int = 10,
                 per_round: int = 10, warmup: int = 3, batch8: bool = True
                 ) -> dict[str, Timing]:
    """Batch-1 latency of every runner, interleaved: each round runs every runner
    ``per_round`` times; then batch-8 throughput the same way."""
    one = {k: make_inputs(faces[:1], r.spec) for k, r in runners.items()}
    eight = {k: make_inputs([faces[i % len(faces)] for i in range(8)], r.spec)
             for k, r in runners.items()}
    for k, r in runners.items():
        for _ in range(warmup):
            r.predict(one[k])
    times: dict[str, list[list[float]]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, r in runners.items():
            ms = []
            for _ in range(per_round):
                t0 = time.perf_counter()
                r.predict(one[k])
                ms.append((time.perf_counter() - t0) * 1e3)
            times[k].append(ms)
    out = {}
    for k, rounds_ms in times.items():
        flat = np.concatenate(rounds_ms)
        medians = [float(np.median(m)) for m in rounds_ms]
        out[k] = Timing(float(np.percentile(flat, 50)), float(np.percentile(flat, 95)),
                        float(np.percentile(flat, 99)), (min(medians), max(medians)), len(flat))
    if batch8:
        for k, r in runners.items():
            r.predict(eight[k])
            t0 = time.perf_counter()
            n = max(2, per_round // 2)
            for _ in range(n):
                r.predict(eight[k])
            out[k].throughput_b8 = 8 * n / (time.perf_counter() - t0)
    return out
