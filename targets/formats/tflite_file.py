"""TFLite: metadata in a named metadata buffer of the flatbuffer; what the file is, from its
tensors' types (tensors with data are weights, the others activations)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import METADATA_KEY


def schema():
    """The TFLite flatbuffer schema module of ai-edge-litert (an error naming the extra when it is
    missing)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise MotivnetError("reading TFLite metadata needs ai-edge-litert: "
                            "pip install 'motivnet-edge[tflite]'") from exc
    return schema_py_generated


def _model(path: Path, buf: bytes):
    s = schema()
    if not s.Model.ModelBufferHasIdentifier(buf, 0):
        raise MotivnetError(f"artifact {path} is not a TFLite flatbuffer")
    return s.Model.GetRootAs(buf, 0)


def read(path: Path) -> str | None:
    """The metadata blob of a TFLite file (its flatbuffer ``metadata`` entry), None when it has
    none."""
    model = _model(path, path.read_bytes())
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_KEY.encode():
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            if isinstance(data, int):  # an empty buffer
                return None
            try:
                return data.tobytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MotivnetError(f"artifact {path}: its '{METADATA_KEY}' metadata is not "
                                    f"UTF-8 text (byte {exc.start}): the file is damaged; copy "
                                    f"it again") from exc
    return None


def write(path: Path, meta: dict) -> None:
    """``meta`` stored as the flatbuffer's metadata entry (an earlier one rewritten in place,
    data appended after the flatbuffer brought inside); the file saved in place."""
    import flatbuffers

    s = schema()
    text = json.dumps(meta, sort_keys=True)
    buf = path.read_bytes()
    model = s.ModelT.InitFromObj(_model(path, buf))
    for b in model.buffers or []:
        if b.offset and b.offset > 1:  # data appended after the flatbuffer: bring it inside
            if b.offset + b.size > len(buf):
                raise MotivnetError(f"{path}: a buffer points past the end of the file")
            b.data = np.frombuffer(buf, np.uint8, b.size, b.offset).copy()
            b.offset = b.size = 0
    blob = s.BufferT()
    blob.data = list(text.encode())
    old = next((m for m in model.metadata or [] if m.name == METADATA_KEY.encode()), None)
    if old is not None:  # rewritten in place: no orphaned buffer, nothing else moves
        model.buffers[old.buffer] = blob
    else:
        model.buffers.append(blob)
        entry = s.MetadataT()
        entry.name = METADATA_KEY
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    builder = flatbuffers.Builder(len(buf) + len(text) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def inspect(path: Path) -> dict:
    """What the TFLite model holds: its quantize ops and the types of its weight tensors."""
    s = schema()
    model = _model(path, path.read_bytes())
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    weights, acts = Counter(), Counter()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
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


def input_shape(path: Path) -> list[int]:
    """The first input's shape (its signature; -1 where dynamic)."""
    model = _model(path, path.read_bytes())
    graph = model.Subgraphs(0)
    tensor = graph.Tensors(graph.Inputs(0))
    sig = tensor.ShapeSignatureAsNumpy()
    shape = tensor.ShapeAsNumpy()
    return [int(v) for v in (sig if not isinstance(sig, int) and len(sig) else shape)]
