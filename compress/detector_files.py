"""Detector files made from the shipped YuNet for the engines that run it besides OpenCV.

- :func:`any_size`: the network with its input height and width left open (the published file
  fixes them at 640x640) and the intermediate shapes stored with it dropped, which ONNX Runtime
  would otherwise hold the graph to; weights and operators untouched. For ONNX Runtime and
  OpenVINO.
- :func:`tflite`: the same network for LiteRT at one fixed input size (XNNPACK cannot resize
  it), NHWC, float32, its twelve outputs as one (1, cells, 16) tensor: per cell class,
  objectness, box (4) and landmarks (10), the cells of strides 8, 16 and 32 one after another.
  It is converted by litert-torch from :func:`yunet_torch`, the ONNX graph run node by node in
  PyTorch. One file per size a shrunk camera frame takes (:data:`TFLITE_SIZES`): a frame
  padded into a larger input finds slightly different landmarks near the padding than
  OpenCV, which pads only to the next multiple of 32.

:mod:`.detector_stage` makes them into a detector folder, gates them and writes its manifest;
the package ships one (``edge/models/detector``).
"""

from __future__ import annotations

from pathlib import Path

from motivnet_edge.targets.files import atomic_path

# (width, height) of the inputs frames shrunk to 320 a side take once padded to 32: 4:3 and
# 16:9 landscape, square, 3:4 portrait
TFLITE_SIZES = ((320, 256), (320, 192), (320, 320), (256, 320))


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


def yunet_torch(src: Path):
    """YuNet's ONNX graph as a PyTorch module that runs it node by node."""
    import torch
    import torch.nn.functional as F
    from onnx import helper, load, numpy_helper

    class YuNetTorch(torch.nn.Module):
        """The ONNX graph run node by node (Conv, Relu, Sigmoid, Add, MaxPool, nearest 2x
        Resize, Transpose, Reshape: all YuNet uses); returns the one (1, cells, 16) tensor."""

        def __init__(self) -> None:
            super().__init__()
            graph = load(str(src)).graph
            self.consts: dict = {}
            for i, init in enumerate(graph.initializer):
                value = numpy_helper.to_array(init).copy()
                if value.dtype.kind == "f":
                    self.register_buffer(f"c{i}", torch.from_numpy(value))
                    value = f"c{i}"
                self.consts[init.name] = value
            self.nodes = [(n.op_type, list(n.input), n.output[0],
                           {a.name: helper.get_attribute_value(a) for a in n.attribute})
                          for n in graph.node]
            self.first = graph.input[0].name
            self.outputs = [o.name for o in graph.output]

        def value(self, env: dict, name: str):
            if name in env:
                return env[name]
            found = self.consts[name]
            return getattr(self, found) if isinstance(found, str) else found

        def node(self, op: str, args: list, at: dict):
            x = args[0]
            pads = at.get("pads", [0, 0, 0, 0])
            if op == "Conv":
                x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
                return F.conv2d(x, args[1], args[2] if len(args) > 2 else None,
                                at.get("strides", [1, 1]), 0, at.get("dilations", [1, 1]),
                                at.get("group", 1))
            if op == "MaxPool":
                return F.max_pool2d(x, at["kernel_shape"], at.get("strides"),
                                    (pads[0], pads[1]), ceil_mode=bool(at.get("ceil_mode", 0)))
            simple = {"Relu": F.relu, "Sigmoid": torch.sigmoid,
                      "Resize": lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest"),
                      "Add": lambda t: t + args[1],
                      "Transpose": lambda t: t.permute(*at.get("perm", ())),
                      "Reshape": lambda t: t.reshape([int(v) for v in args[1]])}
            return simple[op](x)

        def forward(self, x):
            env = {self.first: x}
            for op, inputs, output, at in self.nodes:
                env[output] = self.node(op, [self.value(env, n) for n in inputs], at)
            outs = [env[n] for n in self.outputs]  # cls, obj, bbox, kps; strides 8, 16, 32
            return torch.cat([torch.cat([outs[i], outs[3 + i], outs[6 + i], outs[9 + i]], 2)
                              for i in range(3)], 1)

    return YuNetTorch().eval()


def tflite_name(width: int, height: int) -> str:
    """The shipped LiteRT file for a ``width`` x ``height`` input."""
    return f"face_detection_yunet_2023mar-{width}x{height}.tflite"


def tflite(src: Path, dest: Path, width: int, height: int) -> Path:
    """``src`` (a YuNet .onnx) as a float32 TFLite file taking ``width`` x ``height`` NHWC BGR
    input (0-255), written to ``dest``."""
    import litert_torch
    import torch

    from motivnet_edge.compress.quiet import quiet_litert

    quiet_litert()
    model = litert_torch.to_channel_last_io(yunet_torch(src), args=[0]).eval()
    with atomic_path(Path(dest)) as tmp:
        litert_torch.convert(model, (torch.zeros(1, height, width, 3),)).export(str(tmp))
    return Path(dest)


def make(src: Path, folder: Path) -> dict[tuple[int, int] | None, Path]:
    """Every detector file made from ``src`` into ``folder``, by input size: the any-size ONNX
    (None) and one TFLite per :data:`TFLITE_SIZES`."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[tuple[int, int] | None, Path] = {
        None: any_size(src, folder / src.name.replace(".onnx", "-any-size.onnx"))}
    for w, h in TFLITE_SIZES:
        made[(w, h)] = tflite(src, folder / tflite_name(w, h), w, h)
    return made
