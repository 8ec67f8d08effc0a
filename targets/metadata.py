"""Reading the JSON metadata every artifact carries, and the manifest beside it. No torch.

One JSON blob sits under one key, :data:`METADATA_KEY`, in every format (where, each format's
module under :mod:`motivnet_edge.targets.formats` says). ``compress`` writes it; ``targets`` and
``edge`` only read it.
"""

from __future__ import annotations

import json
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.formats import METADATA_KEY, SCHEMA_VERSION, format_of
from motivnet_edge.targets.preprocess import CropSpec

MANIFEST = "manifest.json"
REQUIRED = ("schema", "labels", "crop", "precision", "format")


def artifact_files(path: str | Path) -> list[Path]:
    """The files an artifact is made of: an OpenVINO IR is its .xml and the .bin beside it."""
    return format_of(path).files(path)


def artifact_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in artifact_files(path))


def read_metadata(path: str | Path) -> dict:
    """The artifact's metadata dict, checked for the required fields and schema version."""
    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"artifact {path} does not exist")
    fmt = format_of(path)
    try:
        text = fmt.codec().read(path)
    except MotivnetError:
        raise
    except ImportError as exc:
        raise MotivnetError(f"reading {path} needs {exc.name}: "
                            f"pip install 'motivnet-edge[{fmt.extra}]'") from exc
    except Exception as exc:
        raise MotivnetError(f"artifact {path} cannot be read as {fmt.name}: {exc}") from exc
    if text is None:
        raise MotivnetError(f"artifact {path} carries no '{METADATA_KEY}' metadata")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MotivnetError(f"artifact {path}: metadata is not JSON ({exc})") from exc
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise MotivnetError(f"artifact {path}: metadata lacks fields {missing}")
    if meta["schema"] > SCHEMA_VERSION:
        raise MotivnetError(f"artifact {path}: metadata schema {meta['schema']} is newer than "
                            f"this runtime's {SCHEMA_VERSION}; upgrade motivnet-edge")
    CropSpec.from_dict(meta["crop"])  # validates the crop spec
    return meta


def check_manifest(path: str | Path) -> str | None:
    """If a manifest lies beside ``path``, check the file's sha256 against it; returns the
    sha256 checked, or None when there is no manifest or it does not list the file."""
    path = Path(path)
    manifest = path.parent / MANIFEST
    if not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MotivnetError(f"manifest {manifest} is not a valid manifest: {exc}") from exc
    entry = next((e for e in entries if e.get("path") == path.name), None)
    if entry is None:
        return None
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        raise MotivnetError(f"artifact {path}: sha256 {actual[:16]}... does not match "
                            f"{manifest}'s {str(entry.get('sha256'))[:16]}...")
    for companion in entry.get("companions", []):  # OpenVINO's .bin beside its .xml
        cpath = path.parent / companion["path"]
        if not cpath.is_file() or sha256_file(cpath) != companion["sha256"]:
            raise MotivnetError(f"artifact {cpath}: missing or sha256 does not match {manifest}")
    return actual
