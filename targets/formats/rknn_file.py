"""RKNN (Rockchip's NPU): the metadata beside the file, in ``<name>.rknn.json``, since the
format's own field for it (``custom_string``) holds under 1,024 bytes; the blob's content digest
covers the ``.rknn`` file, so a changed byte in either is refused as for every format. What the
file is, from the graph description rknn-toolkit2 writes into it as JSON (its input and output
tensors' types, its target platforms): the weights themselves are in the compiled NPU graph."""

from __future__ import annotations

import json
import re
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path

SIDECAR = ".rknn.json"


def _sidecar(path: Path) -> Path:
    return Path(path).with_suffix(SIDECAR)


def read(path: Path) -> str | None:
    """The metadata blob beside an RKNN file, None when there is none."""
    _graph(path)  # an RKNN file, or an error naming it
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        return None
    try:
        return sidecar.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MotivnetError(f"artifact {path}: its metadata {sidecar.name} is not UTF-8 text "
                            f"(byte {exc.start}): copy it again") from exc


def write(path: Path, meta: dict) -> None:
    """``meta`` written beside the file, under a temporary name renamed into place."""
    with atomic_path(_sidecar(path)) as tmp:
        tmp.write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")


def _graph(path: Path) -> dict:
    """The graph description rknn-toolkit2 stores in the file (its ``norm_tensor`` entries)."""
    data = Path(path).read_bytes()
    if data[:4] != b"RKNN":
        raise MotivnetError(f"artifact {path} is not an RKNN file (no RKNN header)")
    found = re.search(rb'\{"connection".*?"virtual_tensor":\[[^\]]*\]\}', data, re.S)
    if found is None:
        raise MotivnetError(f"artifact {path}: no graph description found in the RKNN file")
    try:
        return json.loads(found.group(0))
    except json.JSONDecodeError as exc:
        raise MotivnetError(f"artifact {path}: its graph description is not JSON ({exc})") \
            from exc


def inspect(path: Path) -> dict:
    """What the compiled graph's inputs and outputs are (int8 on the NPU for a quantised file)
    and which platforms it was compiled for. ``int8_weight_tensors`` counts the int8 tensors at
    the NPU graph's edges: RKNN quantises weights with the activations (w8a8) or not at all."""
    graph = _graph(path)
    types = [t.get("dtype", {}).get("vx_type", "") for t in graph.get("norm_tensor", [])]
    int8 = sum(t in ("int8", "uint8") for t in types)
    return {"int8_weight_tensors": int8, "float_weight_tensors": len(types) - int8,
            "activation_quantize_ops": int8, "tensor_types": types,
            "target_platform": graph.get("target_platform", []),
            "toolkit_version": graph.get("version", "")}


def input_shape(path: Path) -> list[int]:
    """The first input's shape (RKNN graphs have a fixed batch of 1)."""
    inputs = [t for t in _graph(path).get("norm_tensor", []) if t.get("url") == "input"]
    tensors = inputs or _graph(path).get("norm_tensor", [])[:1]
    return list(tensors[0]["size"]) if tensors else []
