"""The export stage: the FP32 student in every format of the table (ONNX first: the IR is made
from it), each written under a temporary name, its metadata embedded, and renamed into place
only when complete. Each artifact's crop spec records its own input layout."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
from motivnet_edge.compress.int8.formats import OPS
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.formats import artifact_name, get_format
from motivnet_edge.targets.preprocess import CropSpec

log = logging.getLogger(__name__)


def artifact_meta(base: dict, fmt: str, spec: CropSpec, path: Path, recipe: dict) -> dict:
    """The metadata blob: base (labels, teacher, student) + this file's crop spec, recipe and
    the precision read back from the file itself."""
    what = inspect_precision(path)
    return {**base, "crop": get_format(fmt).crop(spec).to_dict(), "precision": what["precision"],
            "precision_detail": what["description"], "recipe": recipe}


def finish(tmp: Path, final: Path, fmt: str, base: dict, spec: CropSpec, recipe: dict) -> Path:
    """Embed metadata into the temporary file; its companions (an IR's .bin) move into place
    here, the file engines open last, when :func:`atomic_path` renames ``tmp``."""
    embed_metadata(tmp, artifact_meta(base, fmt, spec, tmp, recipe))
    files = get_format(fmt).files
    for src, dst in zip(files(tmp)[1:], files(final)[1:], strict=True):
        src.replace(dst)
    return final


def export_fp32(model: torch.nn.Module, spec: CropSpec, out_dir: Path, base: dict
                ) -> dict[str, Path]:
    """The FP32 student in every format, in the table's order; returns format -> path."""
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for fmt, ops in OPS.items():
        if ops.export is None:  # made from another format's file (RKNN from the ONNX)
            continue
        final = out_dir / artifact_name("student", "fp32", fmt)
        log.info("exporting %s", final.name)
        with atomic_path(final) as tmp:
            try:
                ops.export(model, spec, tmp, out_dir)
                paths[fmt] = finish(tmp, final, fmt, base, spec, {"name": "fp32"})
            finally:
                for companion in get_format(fmt).files(tmp)[1:]:
                    companion.unlink(missing_ok=True)
    return paths


def stage_export(out: Path) -> dict[str, Path]:
    """The export stage: the FP32 student of ``out`` as ONNX, OpenVINO IR and TFLite, each with its
    metadata; the paths by format."""
    from motivnet_edge.compress.distil.distilled import load_distilled

    d = load_distilled(out)
    d.folder.drop_verdict()
    return export_fp32(d.model, d.spec, Path(out), d.base_meta())
