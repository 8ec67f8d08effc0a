"""LiteRT engine for .tflite: ``ai_edge_litert``, else ``tflite_runtime``; XNNPACK threads.

Integer input and output tensors are quantised and dequantised with the tensor's own scale
and zero point, so callers always pass and get float.
"""

from __future__ import annotations

import numpy as np

from motivnet_edge.targets.engine import Engine, InputInfo, join_outputs
from motivnet_edge.targets.errors import MotivnetError


def interpreter_class():
    """LiteRT's Interpreter class: ai_edge_litert's, else the older tflite_runtime's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # the older package, fallback only
    return Interpreter


class LiteRtEngine(Engine):
    name = "litert"

    def _load(self) -> InputInfo:
        self._open()
        shape = tuple(int(d) for d in self.in_detail["shape"])
        # A batch axis exported as 1 can often be resized; some graphs (a ViT's reshapes) cannot,
        # and XNNPACK refuses them: probe once, and run such files one face at a time.
        dynamic = self._resize(2)
        if dynamic:
            self._resize(1)
        else:
            self._open()
        self.settings = {"runtime": self.interpreter_class.__module__.split(".")[0],
                         "threads": self.options.threads,
                         "input_dtype": self.in_detail["dtype"].__name__, "batching": dynamic}
        return InputInfo(shape, "float32", self.crop, dynamic_batch=dynamic)

    def _open(self) -> None:
        self.interpreter_class = interpreter_class()
        self.interpreter = self.interpreter_class(model_path=str(self.path),
                                                  num_threads=self.options.threads or None)
        self.interpreter.allocate_tensors()
        self.in_detail = self.interpreter.get_input_details()[0]
        # a model with several outputs (a class head and a valence/arousal head) gives them as
        # one row, in the order of their names (output_0, output_1, ...)
        self.out_details = sorted(self.interpreter.get_output_details(),
                                  key=lambda d: (len(d["name"]), d["name"]))
        self._batch = 1

    def _resize(self, n: int) -> bool:
        shape = [n, *(int(d) for d in self.in_detail["shape"][1:])]
        try:
            self.interpreter.resize_tensor_input(self.in_detail["index"], shape)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError):
            return False
        if int(self.interpreter.get_output_details()[0]["shape"][0]) != n:
            return False  # a graph with the batch fixed inside (a constant slice) keeps 1 row
        self._batch = n
        return True

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch and not self._resize(len(batch)):
            raise MotivnetError(f"{self.path}: cannot run a batch of {len(batch)}")
        dtype = self.in_detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self.in_detail["quantization"]
            info = np.iinfo(dtype)
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.in_detail["index"], batch.astype(dtype, copy=False))
        self.interpreter.invoke()
        return join_outputs(self._output(d) for d in self.out_details)

    def _output(self, detail: dict) -> np.ndarray:
        out = self.interpreter.get_tensor(detail["index"])
        if np.issubdtype(out.dtype, np.integer):
            scale, zero = detail["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out

    def close(self) -> None:
        self.interpreter = None


ENGINE = LiteRtEngine
