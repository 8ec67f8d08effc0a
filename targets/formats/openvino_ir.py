"""OpenVINO IR: metadata in the model's ``rt_info``, our JSON blob and OpenVINO Model API's
``model_info`` entries (so OpenVINO's own tools read labels and preprocessing); what the file
is, from its constants and FakeQuantize ops. The weights in the ``.bin`` are saved as they are
(``compress_to_fp16`` would silently halve them)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from motivnet_edge.targets.formats import METADATA_KEY


def read(path: Path) -> str | None:
    """The metadata blob of an OpenVINO IR (its ``rt_info`` entry), None when it has none."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    return model.get_rt_info([METADATA_KEY]).astype(str) if model.has_rt_info([METADATA_KEY]) \
        else None


def model_info(meta: dict) -> dict[str, str]:
    """OpenVINO Model API's ``model_info`` for a classifier: labels, mean and scale in the
    input's channel order (0-255 units), layout. ``reverse_input_channels`` is True for an RGB
    model, since Model API hands it BGR frames."""
    crop = meta["crop"]
    return {"model_type": "Classification",
            "labels": " ".join(str(label).replace(" ", "_") for label in meta["labels"]),
            "mean_values": " ".join(f"{v:g}" for v in crop["mean"]),
            "scale_values": " ".join(f"{v:g}" for v in crop["std"]),
            "reverse_input_channels": str(crop["color"] == "rgb"),
            "layout": crop["layout"].upper(), "resize_type": "standard",
            "output_raw_scores": "True"}


def write(path: Path, meta: dict) -> None:
    """``meta`` stored in the IR's ``rt_info``; the .xml and .bin rewritten atomically."""
    import openvino as ov

    from motivnet_edge.targets.formats import FORMATS

    model = ov.Core().read_model(str(path))
    model.set_rt_info(json.dumps(meta, sort_keys=True), [METADATA_KEY])
    for key, value in model_info(meta).items():
        model.set_rt_info(value, ["model_info", key])
    fmt = FORMATS["openvino"]
    tmp = path.with_name(f".meta-{path.name}")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        fmt.move(tmp, path)
    finally:
        fmt.remove(tmp)


def inspect(path: Path) -> dict:
    """What the IR holds: its int8 and float weight constants (and their element types), the
    FakeQuantize/FakeConvert ops on its activations, its most common ops."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    ops = Counter(op.get_type_name() for op in model.get_ops())
    const_types = Counter(op.get_output_element_type(0).get_type_name() for op in model.get_ops()
                          if op.get_type_name() == "Constant"
                          and len(op.get_output_partial_shape(0)) >= 2)
    int_weights = sum(v for k, v in const_types.items() if k in ("i8", "u8"))
    float_weights = sum(v for k, v in const_types.items() if k in ("f32", "f16", "bf16"))
    return {"int8_weight_tensors": int_weights, "float_weight_tensors": float_weights,
            "activation_quantize_ops": ops.get("FakeQuantize", 0) + ops.get("FakeConvert", 0),
            "weight_types": dict(const_types), "ops": dict(ops.most_common(8))}


def input_shape(path: Path) -> list[int]:
    """The first input's shape, -1 where dynamic."""
    import openvino as ov

    shape = ov.Core().read_model(str(path)).input(0).get_partial_shape()
    return [d.get_length() if d.is_static else -1 for d in shape]
