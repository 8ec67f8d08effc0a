"""Writing artifacts: the embedded metadata blob, what each file really is, and the manifest.
How each format stores its metadata is the format table's business
(:mod:`motivnet_edge.targets.formats`); the read side is :mod:`motivnet_edge.targets.metadata`."""

from __future__ import annotations

import json
from pathlib import Path

from motivnet_edge.targets.formats import SCHEMA_VERSION, format_of
from motivnet_edge.targets.metadata import (
    DIGEST_KEY,
    DIGEST_PLACEHOLDER,
    check_content,
    content_digest,
)


def embed_metadata(path: Path, meta: dict) -> None:
    """Write ``meta`` (plus schema version, format and the artifact's content digest) into the
    artifact at ``path`` in place. The digest is taken with a placeholder of its own length in
    the blob, then written over it, so nothing else in the file moves; the result is read back
    and checked as every load will check it."""
    fmt = format_of(path)
    codec = fmt.codec()
    full = {"schema": SCHEMA_VERSION, "format": fmt.name, **meta,
            DIGEST_KEY: DIGEST_PLACEHOLDER}
    codec.write(Path(path), full)
    full[DIGEST_KEY] = content_digest(path, codec.read(Path(path)))
    codec.write(Path(path), full)
    text = codec.read(Path(path))
    check_content(path, text, json.loads(text))  # a writer that moved bytes is caught here


def inspect_precision(path: Path) -> dict:
    """Read the file and say what it is: ``int8`` (weights and activations), ``int8-weights``
    (weights only) or ``fp32``/``fp16``, with the counts behind the verdict."""
    fmt = format_of(path)
    facts = fmt.codec().inspect(Path(path))
    if facts["int8_weight_tensors"] and facts["activation_quantize_ops"]:
        verdict = "int8"
        text = "weights and activations int8"
    elif facts["int8_weight_tensors"]:
        verdict, text = "int8-weights", "weights int8, activations float"
    elif fmt.name == "openvino" and any("16" in k for k in facts.get("weight_types", {})):
        verdict, text = "fp16", "weights fp16"
    else:
        verdict, text = "fp32", "weights and activations float32"
    if facts["activation_quantize_ops"] and not facts["int8_weight_tensors"] \
            and fmt.name != "onnx":
        verdict, text = "int8", "weights int8 (folded into quantize ops), activations int8"
    return {"precision": verdict, "description": text, **facts}
