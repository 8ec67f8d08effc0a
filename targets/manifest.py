"""``manifest.json``, the one owner of it: every read, write and filter of an artifact folder's
manifest goes through :class:`Manifest`. It lists each file's sha256, size, role and companion
files (an OpenVINO IR's .bin); a role that starts with :data:`REJECTED_ROLE` marks an INT8
artifact that failed the gate and is kept for inspection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import sha256_file, write_json
from motivnet_edge.targets.formats import SCHEMA_VERSION, SUFFIXES

MANIFEST = "manifest.json"
REJECTED_ROLE = "rejected-"  # the prefix of a failed artifact's role
STUDENT_WEIGHTS_ROLE = "student-fp32-weights"
REPORT_ROLE = "report"


def artifact_role(fmt: str, precision: str, passed: bool) -> str:
    """An artifact's role: ``onnx-int8``, ``rejected-openvino-int8``."""
    return ("" if passed else REJECTED_ROLE) + f"{fmt}-{precision}"


def file_entry(path: Path, role: str, **extra) -> dict:
    """A manifest entry: the file, its role, sha256 and size, and its companion files."""
    path = Path(path)
    entry = {"path": path.name, "role": role, "sha256": sha256_file(path),
             "bytes": path.stat().st_size, **extra}
    fmt = SUFFIXES.get(path.suffix.lower())
    companions = fmt.files(path)[1:] if fmt else []
    if companions:
        entry["companions"] = [{"path": c.name, "sha256": sha256_file(c),
                                "bytes": c.stat().st_size} for c in companions if c.is_file()]
    return entry


def _safe_relative(path) -> bool:
    """A relative path inside the manifest's folder: no NUL, not absolute, no '..'."""
    return isinstance(path, str) and bool(path) and "\0" not in path \
        and not path.startswith("/") and ".." not in Path(path).parts


def _valid_entry(e) -> bool:
    def sized(d) -> bool:
        return isinstance(d, dict) and _safe_relative(d.get("path")) and \
            isinstance(d.get("sha256"), str) and \
            (d.get("bytes") is None or (isinstance(d["bytes"], int)
                                        and not isinstance(d["bytes"], bool)))

    companions = e.get("companions", []) if isinstance(e, dict) else None
    return sized(e) and isinstance(companions, list) and all(sized(c) for c in companions)


@dataclass
class Manifest:
    """A folder's manifest: its ``files`` entries and every other key (``info``)."""

    files: list[dict]
    info: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path`` (a manifest.json or the folder holding one), each entry
        checked for path, sha256, bytes and companions."""
        path = Path(path)
        path = path / MANIFEST if path.is_dir() else path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MotivnetError(f"manifest {path} cannot be read: {exc}") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: bytes, where: str) -> Manifest:
        """A manifest from its bytes (``where`` names it in errors), every entry checked."""
        try:
            doc = json.loads(data.decode("utf-8"))
            entries = doc["files"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise MotivnetError(f"manifest {where} is not a valid manifest: {exc}") from exc
        if not isinstance(entries, list):
            raise MotivnetError(f"manifest {where}: 'files' is {entries!r}, not a list")
        bad = next((e for e in entries if not _valid_entry(e)), None)
        if bad is not None:
            raise MotivnetError(f"manifest {where}: entry {str(bad)[:200]} needs a relative "
                                f"path inside its folder, sha256, bytes (a whole number) and "
                                f"companions of the same")
        return cls(entries, {k: v for k, v in doc.items() if k != "files"})

    @classmethod
    def find(cls, folder: Path) -> Manifest | None:
        """The manifest of ``folder``, None when it has none."""
        return cls.read(Path(folder) / MANIFEST) if (Path(folder) / MANIFEST).is_file() \
            else None

    def entry(self, name: str) -> dict | None:
        """The entry of file ``name``, None when the manifest does not list it."""
        return next((e for e in self.files if e["path"] == name), None)

    def passed(self) -> set[str]:
        """The files that passed the gate (every file whose role is not a rejected one)."""
        return {e["path"] for e in self.files
                if not str(e.get("role", "")).startswith(REJECTED_ROLE)}

    def rejected(self) -> set[str]:
        """The files whose role says they failed the gate."""
        return {e["path"] for e in self.files} - self.passed()

    def only(self, names) -> Manifest:
        """The same manifest listing only the files in ``names``."""
        names = set(names)
        return Manifest([e for e in self.files if e["path"] in names], dict(self.info))

    def write(self, folder: Path) -> Path:
        """Written (atomically) as ``folder``/manifest.json."""
        path = Path(folder) / MANIFEST
        write_json(path, {"schema": self.info.get("schema", SCHEMA_VERSION), **self.info,
                          "files": self.files})
        return path
