"""Detector files made from the shipped YuNet for the engines that run it besides OpenCV.

:func:`any_size` leaves the network's input height and width open (the published file fixes
them at 640x640) and drops the intermediate shapes stored with it, which ONNX Runtime would
otherwise hold the graph to; weights and operators are untouched. The result is shipped as
``edge/models/face_detection_yunet_2023mar-any-size.onnx``; its faces are checked against
OpenCV's on the original by ``tests/test_yunet_engines.py``.
"""

from __future__ import annotations

from pathlib import Path

from motivnet_edge.targets.files import atomic_path


def any_size(src: Path, dest: Path) -> Path:
    """``src`` (a YuNet .onnx) written to ``dest`` with its input size left open."""
    import onnx

    model = onnx.load(str(src))
    del model.graph.value_info[:]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        out.type.tensor_type.shape.dim[1].dim_param = "cells"
    onnx.checker.check_model(model)
    with atomic_path(Path(dest)) as tmp:
        onnx.save(model, str(tmp))
    return Path(dest)
