"""FP32 exports of the student: ONNX, OpenVINO IR (from that ONNX) and TFLite (litert-torch).

Each is written under a temporary name, gets its metadata embedded, and is renamed into place
only when complete. ONNX and OpenVINO take NCHW input with a dynamic batch; TFLite takes NHWC,
the layout LiteRT and XNNPACK prefer. Each artifact's crop spec records its own layout.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from motivnet_edge.compress.artifacts import embed_metadata, inspect_precision
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.formats import FORMATS, artifact_name, get_format
from motivnet_edge.targets.preprocess import CropSpec

log = logging.getLogger(__name__)


def spec_for(fmt: str, spec: CropSpec) -> CropSpec:
    """``spec`` in the input layout the format's exports take."""
    return replace(spec, layout=get_format(fmt).layout)


def artifact_meta(base: dict, fmt: str, spec: CropSpec, path: Path, recipe: dict) -> dict:
    """The metadata blob: base (labels, teacher, student) + this file's crop spec, recipe and
    the precision read back from the file itself."""
    what = inspect_precision(path)
    return {**base, "crop": spec_for(fmt, spec).to_dict(), "precision": what["precision"],
            "precision_detail": what["description"], "recipe": recipe}


def save_onnx(model: torch.nn.Module, spec: CropSpec, tmp: Path) -> None:
    x = torch.zeros(spec_for("onnx", spec).input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(tmp), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def save_openvino_from_onnx(onnx_path: Path, tmp_xml: Path) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(tmp_xml), compress_to_fp16=False)


def nhwc_module(model: torch.nn.Module) -> torch.nn.Module:
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()

    return litert_torch.to_channel_last_io(model.eval(), args=[0]).eval()


def save_tflite(model: torch.nn.Module, spec: CropSpec, tmp: Path) -> None:
    import litert_torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()

    x = torch.zeros(spec_for("tflite", spec).input_shape)
    litert_torch.convert(nhwc_module(model), (x,)).export(str(tmp))


def finish(tmp: Path, final: Path, fmt: str, base: dict, spec: CropSpec, recipe: dict) -> Path:
    """Embed metadata into the temporary file; its companions (an IR's .bin) move into place
    here, the file engines open last, when :func:`atomic_path` renames ``tmp``."""
    import os

    embed_metadata(tmp, artifact_meta(base, fmt, spec, tmp, recipe))
    files = get_format(fmt).files
    for src, dst in zip(files(tmp)[1:], files(final)[1:], strict=True):
        os.replace(src, dst)
    return final


def export_fp32(model: torch.nn.Module, spec: CropSpec, out_dir: Path, base: dict
                ) -> dict[str, Path]:
    """The FP32 student in every format (ONNX first: the IR is made from it); returns
    format -> path."""
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for fmt in FORMATS:
        final = out_dir / artifact_name("student", "fp32", fmt)
        log.info("exporting %s", final.name)
        with atomic_path(final) as tmp:
            if fmt == "onnx":
                save_onnx(model, spec, tmp)
            elif fmt == "openvino":
                save_openvino_from_onnx(paths["onnx"], tmp)
            else:
                save_tflite(model, spec, tmp)
            try:
                paths[fmt] = finish(tmp, final, fmt, base, spec, {"name": "fp32"})
            finally:
                for companion in get_format(fmt).files(tmp)[1:]:
                    companion.unlink(missing_ok=True)
    return paths
