"""Fuzz harnesses: every reader of a file a user, an operator or a damaged copy hands the
project, fed arbitrary bytes. Each may raise the project's own error (``MotivnetError``, a clear
message naming the file and field) and nothing else: any other exception is a traceback a user
would see. Run them with atheris (``python -m tests.fuzz.run_atheris NAME``) or as a short
random-mutation run in ``tests/test_fuzz.py`` on every ``make test``.

Each harness is (seeds, target): seeds are valid inputs to start mutating from; ``target(data,
folder)`` writes ``data`` where the reader expects a file and reads it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "edge" / "models" / "emotion"


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o644)  # a world-writable file is refused before it is read
    return path


# ---- the daemon's config -------------------------------------------------------------------

def config_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "examples").glob("*.yaml"))]


def config_target(data: bytes, folder: Path) -> None:
    from motivnet_edge.edge.config import load_config

    load_config(_write(folder, "config.yaml", data), env={})


# ---- a classifier spec -----------------------------------------------------------------------

def spec_seeds() -> list[bytes]:
    from motivnet_edge.targets.classifier_spec import motivnet_spec

    shipped = [b"\x00" + p.read_bytes()
               for p in sorted((ROOT / "targets" / "specs").glob("*.yaml"))]
    m = motivnet_spec()
    json_spec = json.dumps({"labels": list(m.labels), "outputs": m.outputs,
                            "crop": m.crop.to_dict()}).encode()
    return [*shipped, b"\x01" + json_spec]


def spec_target(data: bytes, folder: Path) -> None:
    """The first byte picks YAML or JSON (the loader reads by suffix)."""
    from motivnet_edge.targets.classifier_spec import load_spec

    name = "spec.json" if data[:1] == b"\x01" else "spec.yaml"
    load_spec(_write(folder, name, data[1:]))


# ---- an artifact's metadata ------------------------------------------------------------------

def metadata_seeds() -> list[bytes]:
    from motivnet_edge.targets.metadata import read_metadata

    meta = read_metadata(SHIPPED / "student-int8.onnx")
    heads = {"classes": list(range(len(meta["labels"]))),
             "valence": {"index": len(meta["labels"]), "range": [-1.0, 1.0]},
             "arousal": {"index": len(meta["labels"]) + 1, "range": [-1.0, 1.0]}}
    return [json.dumps(meta).encode(), json.dumps({**meta, "heads": heads}).encode()]


def metadata_target(data: bytes, folder: Path) -> None:
    """The metadata blob as the format readers hand it over: TFLite's raw bytes decoded as
    UTF-8 (a flipped byte there is not UTF-8), then parsed and checked."""
    from motivnet_edge.targets.errors import MotivnetError
    from motivnet_edge.targets.metadata import parse_metadata

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # what the TFLite reader raises for such bytes
        raise MotivnetError("metadata is not UTF-8") from exc
    parse_metadata(text, folder / "student-int8.tflite")


# ---- a manifest beside an artifact -------------------------------------------------------

ARTIFACT = b"not a model, only bytes the manifest describes\n" * 4


def manifest_seeds() -> list[bytes]:
    entry = {"path": "student-int8.onnx", "role": "onnx-int8", "precision": "int8",
             "sha256": hashlib.sha256(ARTIFACT).hexdigest(), "bytes": len(ARTIFACT)}
    companion = {**entry, "path": "student-int8.xml", "companions": [
        {"path": "student-int8.bin", "sha256": entry["sha256"], "bytes": len(ARTIFACT)}]}
    return [json.dumps({"schema": 1, "labels": ["Neutral"], "files": [entry]}).encode(),
            json.dumps({"schema": 1, "files": [companion, entry]}).encode(),
            (SHIPPED / "manifest.json").read_bytes()]


def manifest_target(data: bytes, folder: Path) -> None:
    from motivnet_edge.targets.metadata import check_manifest

    for name in ("student-int8.onnx", "student-int8.bin"):
        if not (folder / name).is_file():
            _write(folder, name, ARTIFACT)
    _write(folder, "manifest.json", data)
    check_manifest(folder / "student-int8.onnx")


HARNESSES: dict[str, tuple[Callable[[], list[bytes]], Callable[[bytes, Path], None]]] = {
    "config": (config_seeds, config_target),
    "spec": (spec_seeds, spec_target),
    "metadata": (metadata_seeds, metadata_target),
    "manifest": (manifest_seeds, manifest_target),
}


def run_one(name: str, data: bytes, folder: Path) -> None:
    """One input through harness ``name``; the project's own error is an accepted outcome."""
    from motivnet_edge.targets.errors import MotivnetError

    try:
        HARNESSES[name][1](data, folder)
    except MotivnetError:
        pass
