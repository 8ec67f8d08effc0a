"""Writing artifacts: the embedded metadata blob, what each file really is, atomic saves and the
manifest. The read side is :mod:`targets.metadata`."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.errors import MotivnetError
from targets.metadata import (
    MANIFEST,
    METADATA_KEY,
    SCHEMA_VERSION,
    artifact_format,
    sha256_file,
    tflite_schema,
)


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``final`` that is renamed onto it only if the block succeeds;
    a killed or failed run leaves nothing under the final name."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=suffix or final.suffix,
                               dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: Path, data: dict) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


# ---- embedding metadata -------------------------------------------------------------------

def _embed_onnx(path: Path, text: str) -> None:
    import onnx

    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=METADATA_KEY, value=text)
    onnx.save(model, str(path))


def _embed_openvino(path: Path, text: str) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    model.set_rt_info(text, [METADATA_KEY])
    # The file's weights are written as they are (compress_to_fp16 would silently halve them).
    bin_path = path.with_suffix(".bin")
    with atomic_path(path) as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_bin, bin_path)


def _embed_tflite(path: Path, text: str) -> None:
    import flatbuffers

    schema = tflite_schema()
    buf = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    for b in model.buffers or []:
        if b.offset and b.offset > 1:  # data appended after the flatbuffer: bring it inside
            if b.offset + b.size > len(buf):
                raise MotivnetError(f"{path}: a buffer points past the end of the file")
            b.data = np.frombuffer(buf, np.uint8, b.size, b.offset).copy()
            b.offset = b.size = 0
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_KEY.encode()]
    blob = schema.BufferT()
    blob.data = list(text.encode())
    model.buffers.append(blob)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(buf) + len(text) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


_EMBED = {"onnx": _embed_onnx, "openvino": _embed_openvino, "tflite": _embed_tflite}


def embed_metadata(path: Path, meta: dict) -> None:
    """Write ``meta`` (plus schema version and format) into the artifact at ``path`` in place."""
    fmt = artifact_format(path)
    full = {"schema": SCHEMA_VERSION, "format": fmt, **meta}
    _EMBED[fmt](Path(path), json.dumps(full, sort_keys=True))


# ---- what a file really is ---------------------------------------------------------------

def _inspect_onnx(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path))
    ops = Counter(n.op_type for n in model.graph.node)
    inits = {i.name: i for i in model.graph.initializer}
    int_weights = sum(1 for i in inits.values()
                      if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
                      and len(i.dims) >= 1)
    float_weights = sum(1 for i in inits.values()
                        if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) >= 2)
    act_q = sum(1 for n in model.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    return {"int8_weight_tensors": int_weights, "float_weight_tensors": float_weights,
            "activation_quantize_ops": act_q, "ops": dict(ops.most_common(8))}


def _inspect_openvino(path: Path) -> dict:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    ops = Counter(op.get_type_name() for op in model.get_ops())
    const_types = Counter(str(op.get_output_element_type(0)) for op in model.get_ops()
                          if op.get_type_name() == "Constant"
                          and len(op.get_output_partial_shape(0)) >= 2)
    int_weights = sum(v for k, v in const_types.items() if k in ("<Type: 'int8_t'>",
                                                                 "<Type: 'uint8_t'>"))
    float_weights = sum(v for k, v in const_types.items() if "float" in k or "f16" in k)
    return {"int8_weight_tensors": int_weights, "float_weight_tensors": float_weights,
            "activation_quantize_ops": ops.get("FakeQuantize", 0) + ops.get("FakeConvert", 0),
            "weight_types": {k.split("'")[1] if "'" in k else k: v
                             for k, v in const_types.items()},
            "ops": dict(ops.most_common(8))}


def _inspect_tflite(path: Path) -> dict:
    schema = tflite_schema()
    buf = path.read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    weights, acts = Counter(), Counter()
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            has_data = buffer.DataLength() > 0 or buffer.Offset() > 1  # inline or appended
            kind = names.get(tensor.Type(), str(tensor.Type()))
            (weights if has_data else acts)[kind] += 1
    return {"int8_weight_tensors": weights.get("INT8", 0),
            "float_weight_tensors": weights.get("FLOAT32", 0) + weights.get("FLOAT16", 0),
            "activation_quantize_ops": acts.get("INT8", 0) + acts.get("INT16", 0),
            "weight_types": dict(weights), "activation_types": dict(acts)}


_INSPECT = {"onnx": _inspect_onnx, "openvino": _inspect_openvino, "tflite": _inspect_tflite}


def inspect_precision(path: Path) -> dict:
    """Read the file and say what it is: ``int8`` (weights and activations), ``int8-weights``
    (weights only) or ``fp32``/``fp16``, with the counts behind the verdict."""
    fmt = artifact_format(path)
    facts = _INSPECT[fmt](Path(path))
    if facts["int8_weight_tensors"] and facts["activation_quantize_ops"]:
        verdict = "int8"
        text = "weights and activations int8"
    elif facts["int8_weight_tensors"]:
        verdict, text = "int8-weights", "weights int8, activations float"
    elif fmt == "openvino" and any("16" in k for k in facts.get("weight_types", {})):
        verdict, text = "fp16", "weights fp16"
    else:
        verdict, text = "fp32", "weights and activations float32"
    if facts["activation_quantize_ops"] and not facts["int8_weight_tensors"] and fmt != "onnx":
        verdict, text = "int8", "weights int8 (folded into quantize ops), activations int8"
    return {"precision": verdict, "description": text, **facts}


# ---- manifest ------------------------------------------------------------------------------

def file_entry(path: Path, role: str, **extra) -> dict:
    entry = {"path": path.name, "role": role, "sha256": sha256_file(path),
             "bytes": path.stat().st_size, **extra}
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        binp = path.with_suffix(".bin")
        entry["companions"] = [{"path": binp.name, "sha256": sha256_file(binp),
                                "bytes": binp.stat().st_size}]
    return entry


def write_manifest(out_dir: Path, entries: list[dict], info: dict) -> Path:
    path = Path(out_dir) / MANIFEST
    write_json(path, {"schema": SCHEMA_VERSION, **info, "files": entries})
    return path
