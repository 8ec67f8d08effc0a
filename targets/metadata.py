"""Reading the JSON metadata every artifact carries, and the manifest beside it. No torch.

One JSON blob sits under one key, :data:`METADATA_KEY`, in every format: ONNX
``metadata_props``, OpenVINO ``rt_info``, a TFLite metadata buffer. ``compress`` writes it;
``targets`` and ``edge`` only read it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge.errors import MotivnetError
from edge.preprocess import CropSpec

METADATA_KEY = "motivnet_edge"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = ("schema", "labels", "crop", "precision", "format")
FORMATS = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite"}


def artifact_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise MotivnetError(f"artifact {path}: unknown format (expected {sorted(FORMATS)})")
    return fmt


def artifact_files(path: str | Path) -> list[Path]:
    """The files an artifact is made of: an OpenVINO IR is its .xml and the .bin beside it."""
    path = Path(path)
    return [path, path.with_suffix(".bin")] if path.suffix.lower() == ".xml" else [path]


def artifact_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in artifact_files(path))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_onnx(path: Path) -> str | None:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        model = onnx.load(str(path), load_external_data=False)
        return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.get_modelmeta().custom_metadata_map.get(METADATA_KEY)


def _read_openvino(path: Path) -> str | None:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) \
        else None


def tflite_schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise MotivnetError("reading TFLite metadata needs ai-edge-litert: "
                            "pip install 'motivnet-edge[tflite]'") from exc
    return schema


def _read_tflite(path: Path) -> str | None:
    schema = tflite_schema()
    buf = path.read_bytes()
    if not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise MotivnetError(f"artifact {path} is not a TFLite flatbuffer")
    model = schema.Model.GetRootAs(buf, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_KEY.encode():
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return None if isinstance(data, int) else data.tobytes().decode()  # int: empty
    return None


_READERS = {"onnx": _read_onnx, "openvino": _read_openvino, "tflite": _read_tflite}


def read_metadata(path: str | Path) -> dict:
    """The artifact's metadata dict, checked for the required fields and schema version."""
    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"artifact {path} does not exist")
    fmt = artifact_format(path)
    try:
        text = _READERS[fmt](path)
    except MotivnetError:
        raise
    except ImportError as exc:
        raise MotivnetError(f"reading {path} needs {exc.name}: "
                            f"pip install 'motivnet-edge[{fmt}]'") \
            from exc
    except Exception as exc:
        raise MotivnetError(f"artifact {path} cannot be read as {fmt}: {exc}") from exc
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
