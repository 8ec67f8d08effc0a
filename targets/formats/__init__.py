"""The format table: everything the project knows about an artifact format, in one entry each.

An entry names the format, its file suffix and companion files, the input layout its exports
take, the engine that opens it by default, the extra that installs that engine's runtime, and
the module that reads, writes and inspects its embedded metadata. Artifact file names come from
:func:`artifact_name`; nothing else in the project spells a suffix or a file name.

Adding a format is one entry here and one small module beside this file.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from motivnet_edge.targets.errors import MotivnetError

# Every artifact carries one JSON blob under this key, in every format.
METADATA_KEY = "motivnet_edge"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Format:
    """One artifact format.

    suffix: the file engines open; companions: suffixes of files that belong to it (an
    OpenVINO IR's weights). layout: the input layout the project exports in this format.
    engine: the engine that opens it by default; extra: the pip extra for that engine.
    module: the module under ``motivnet_edge.targets.formats`` with ``read(path)``,
    ``write(path, text, info)`` and ``inspect(path)`` for the embedded metadata.
    default: compress makes it unless told which formats (one made with a toolkit of its own,
    as RKNN, is asked for by name).
    """

    name: str
    suffix: str
    companions: tuple[str, ...]
    layout: str
    engine: str
    extra: str
    module: str
    default: bool = True

    def codec(self) -> ModuleType:
        """The module that reads, writes and inspects this format (imports its library lazily)."""
        return importlib.import_module(f"motivnet_edge.targets.formats.{self.module}")

    def files(self, path: str | Path) -> list[Path]:
        """The files an artifact is made of, the opened file first."""
        path = Path(path)
        return [path, *(path.with_suffix(s) for s in self.companions)]

    def move(self, src: str | Path, dst: str | Path) -> None:
        """Rename an artifact with its companions: the companions (an IR's .bin) first, the
        file engines open last, so a reader never finds the opened file without its weights."""
        for s, d in reversed(list(zip(self.files(src), self.files(dst), strict=True))):
            os.replace(s, d)

    def remove(self, path: str | Path) -> None:
        """Delete an artifact and its companions (those that exist)."""
        for p in self.files(path):
            p.unlink(missing_ok=True)

    def crop(self, spec):
        """A :class:`~motivnet_edge.targets.preprocess.CropSpec` in the input layout this
        format's exports take."""
        return replace(spec, layout=self.layout)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", ".onnx", (), "nchw", "onnxruntime", "onnx", "onnx_file"),
    Format("openvino", ".xml", (".bin",), "nchw", "openvino", "openvino", "openvino_ir"),
    Format("tflite", ".tflite", (), "nhwc", "litert", "tflite", "tflite_file"),
    # Rockchip's NPU: a compiled graph whose metadata lies beside it (rknn_file.py)
    Format("rknn", ".rknn", (".rknn.json",), "nchw", "rknn", "rknn", "rknn_file",
           default=False),
)}
SUFFIXES: dict[str, Format] = {f.suffix: f for f in FORMATS.values()}
# the formats compress makes unless told otherwise
DEFAULT_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.default)

# What an artifact file is for (its role) and how precise it is: the parts of its name.
ROLES = ("student",)
PRECISIONS = ("fp32", "int8")
REJECTED = "rejected"  # a tag: an INT8 artifact that failed the gate, kept for inspection


def get_format(name: str) -> Format:
    """The table's entry for format ``name``; an error listing the known ones."""
    if name not in FORMATS:
        raise MotivnetError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    return FORMATS[name]


def format_of(path: str | Path) -> Format:
    """The format of an artifact file, from its suffix."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise MotivnetError(f"artifact {path}: unknown format (expected one of "
                            f"{', '.join(SUFFIXES)})")
    return fmt


def is_artifact(path: str | Path) -> bool:
    """True for a file whose suffix is an artifact format's own (not a hidden temporary)."""
    path = Path(path)
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def artifact_name(role: str, precision: str, fmt: str, tag: str | None = None) -> str:
    """The file name of an artifact: ``student-int8.onnx``, ``student-int8.rejected.xml``."""
    if role not in ROLES or precision not in PRECISIONS:
        raise MotivnetError(f"no artifact is named for role {role!r} and precision "
                            f"{precision!r}")
    return f"{role}-{precision}{'.' + tag if tag else ''}{get_format(fmt).suffix}"
