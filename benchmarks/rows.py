"""The rows of the benchmark table: which models run here and how each is opened.

A row is one model on one engine and device: the full model (the teacher the artifacts were
distilled from, or MotivNet itself, speed only), every artifact of a compress folder in every
engine and device of this host that opens it, and any baseline classifier. A row that cannot
run here keeps its place with the reason as its status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from motivnet_edge.benchmarks.measure import Runner, engine_runner
from motivnet_edge.compress.runfolder import RunFolder
from motivnet_edge.targets.classifier_spec import ClassifierSpec
from motivnet_edge.targets.engine import EngineOptions, engine_class, engine_for_file, engines_for
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import REJECTED, artifact_name, format_of, is_artifact
from motivnet_edge.targets.metadata import artifact_bytes, output_spec, read_metadata
from motivnet_edge.targets.preprocess import CropSpec
from motivnet_edge.targets.profiles import host_facts

SIMULATED = "SIMULATED"


@dataclass
class Row:
    """One model on one engine and device, and what was measured of it."""

    name: str
    kind: str  # full-model | teacher | artifact | baseline
    engine: str
    device: str
    precision: str
    file: str = ""
    bytes: int | None = None
    float_source: str = ""  # the row whose top-1 this one is compared with, when float
    status: str = "ok"
    runner: Runner | None = field(default=None, repr=False)
    speed_only: bool = False
    simulated: bool = False  # run in a vendor's simulator on this host: accuracy only
    results: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name} [{self.engine}/{self.device}/{self.precision}]"

    def fail(self, why: str) -> Row:
        """Marked failed, with no figures (what was measured before the failure is dropped)."""
        self.status = f"failed: {why}"
        self.runner = None
        self.results = {}
        return self

    def to_dict(self) -> dict:
        return {"row": self.key, "name": self.name, "kind": self.kind, "engine": self.engine,
                "device": self.device, "precision": self.precision, "file": self.file,
                "bytes": self.bytes, "float_source": self.float_source, "status": self.status,
                "speed_only": self.speed_only, "simulated": self.simulated, **self.results}


def engine_devices(engine: str) -> list[str]:
    """The devices of this host an engine can use (what ``motivnet-edge targets`` probes); its
    default device where its runtime is missing, so the row says why it failed."""
    return host_facts().devices(engine) or [engine_class(engine).devices[0]]


def artifact_rows(folder: Path, threads: int) -> list[Row]:
    """Every artifact in ``folder`` on every engine and device that opens it here; a rejected
    artifact is measured too, marked as such."""
    rows = []
    for path in sorted(p for p in Path(folder).iterdir() if is_artifact(p)):
        fmt = format_of(path)
        try:
            meta = read_metadata(path)
        except MotivnetError as exc:
            rows.append(Row(path.name, "artifact", fmt.engine, "cpu", "?", path.name)
                        .fail(str(exc)))
            continue
        precision = meta["precision"]
        twin = artifact_name("student", "fp32", fmt.name) if precision != "fp32" else ""
        simulated = simulated_row(Path(folder), path, meta)
        if simulated is not None:
            rows.append(simulated)
            continue
        for engine in engines_for(fmt.name):
            for device in engine_devices(engine):
                row = Row(path.name, "artifact", engine, device, precision, path.name,
                          artifact_bytes(path), twin)
                if f".{REJECTED}." in path.name:
                    row.status = "rejected by the gate"
                row.runner = engine_runner(path, engine, EngineOptions(device=device,
                                                                       threads=threads))
                rows.append(row)
    return rows


def simulated_row(folder: Path, path: Path, meta: dict) -> Row | None:
    """A file no engine here opens (RKNN on x86) run in its toolkit's simulator, built again
    from the record its run folder keeps: marked SIMULATED, accuracy only, no latency. None
    when an engine opens it here, or when it cannot be simulated (the engine's row says why)."""
    fmt = format_of(path)
    facts = host_facts()  # the probe every engine row reads (RKNN's needs librknnrt.so too)
    if any(facts.devices(e) for e in engines_for(fmt.name)):
        return None
    try:  # the compress side (a device install has none)
        from motivnet_edge.compress.int8.formats import is_simulated
        from motivnet_edge.compress.int8.simulated import can_resimulate, resimulate
    except ImportError:
        return None
    if not is_simulated(path) or can_resimulate(folder, path) is not None:
        return None
    layout = output_spec(meta)
    runner = Runner(load=lambda: None, spec=CropSpec.from_dict(meta["crop"]),
                    labels=meta["labels"], to_logits=layout.class_outputs,
                    to_values=layout.values, path=str(path), whole=True,
                    predict=lambda batch: resimulate(folder, path, batch))
    platform = meta.get("recipe", {}).get("platform", "?")
    return Row(path.name, "artifact", fmt.engine, f"{platform} simulator", meta["precision"],
               path.name, artifact_bytes(path), status=f"{SIMULATED}: its toolkit's simulator "
               f"on this host, accuracy only, no latency claim", runner=runner, simulated=True)


def classifier_row(path: Path, spec: ClassifierSpec, name: str, kind: str,
                   threads: int, engine: str | None = None) -> Row:
    """An exported classifier (a teacher or a baseline) in ``engine`` (default: its format's).
    """
    engine = engine_for_file(path, engine, name)
    meta = {"labels": list(spec.labels), "crop": spec.crop.to_dict()}
    row = Row(name, kind, engine, "cpu", "as exported", path.name, artifact_bytes(path))
    row.runner = engine_runner(path, engine, EngineOptions(threads=threads), metadata=meta,
                               to_logits=spec.logits, to_values=spec.values)
    row.runner.labels = spec.labels
    return row


def recorded_teacher(folder: Path) -> tuple[Path | None, dict]:
    """The teacher a compress folder was distilled from: its file (when still there) and
    record, from ``work/run.json``."""
    run = RunFolder(folder)
    if not run.record.is_file():
        return None, {}
    record = asdict(run.read_record().teacher)
    path = Path(record.get("path") or "")
    return (path if path.is_file() else None), record
