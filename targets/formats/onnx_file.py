"""ONNX: metadata in the model's ``metadata_props``; what the file is, from its initializers and
QuantizeLinear nodes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from motivnet_edge.targets.formats import METADATA_KEY


def read(path: Path) -> str | None:
    """The metadata blob of an ONNX file (its ``metadata_props`` entry), None when it has none."""
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        model = onnx.load(str(path), load_external_data=False)
        return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    # the device install has ONNX Runtime, not the onnx package
    from motivnet_edge.targets.engines.onnxruntime import cpu_session

    return cpu_session(path).get_modelmeta().custom_metadata_map.get(METADATA_KEY)


def write(path: Path, meta: dict) -> None:
    """``meta`` stored in the ONNX file's ``metadata_props``, replacing an earlier blob; the file
    is saved in place (compress writes it into a file it has just exported)."""
    import onnx

    model = onnx.load(str(path))
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta, sort_keys=True))
    onnx.save(model, str(path))


def inspect(path: Path) -> dict:
    """What the ONNX graph holds: its int8 and float weight tensors, the quantize ops on its
    activations, its most common ops."""
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


def input_shape(path: Path) -> list[int]:
    """The first input's shape, -1 where dynamic."""
    try:
        import onnx
    except ImportError:
        from motivnet_edge.targets.engines.onnxruntime import cpu_session

        shape = cpu_session(path).get_inputs()[0].shape
        return [d if isinstance(d, int) else -1 for d in shape]
    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else -1 for d in dims.shape.dim]
