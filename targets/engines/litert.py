"""LiteRT engine for .tflite: ``ai_edge_litert``, else ``tflite_runtime``; XNNPACK threads.

Integer input and output tensors are quantised and dequantised with the tensor's own scale
and zero point, so callers always pass and get float.
"""

from __future__ import annotations

import numpy as np

from targets.engine import Engine, InputInfo


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # the older package, fallback only
    return Interpreter


class LiteRtEngine(Engine):
    name = "litert"

    def _load(self) -> InputInfo:
        interpreter = _interpreter_class()
        self.interpreter = interpreter(model_path=str(self.path),
                                       num_threads=self.options.threads or None)
        self.interpreter.allocate_tensors()
        self.in_detail = self.interpreter.get_input_details()[0]
        self.out_detail = self.interpreter.get_output_details()[0]
        self._batch = 1
        self.settings = {"runtime": interpreter.__module__.split(".")[0],
                         "threads": self.options.threads,
                         "input_dtype": self.in_detail["dtype"].__name__}
        shape = tuple(int(d) for d in self.in_detail["shape"])
        return InputInfo(shape, "float32", self.crop, dynamic_batch=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self.in_detail["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        dtype = self.in_detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self.in_detail["quantization"]
            info = np.iinfo(dtype)
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.in_detail["index"], batch.astype(dtype, copy=False))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.out_detail["index"])
        if np.issubdtype(out.dtype, np.integer):
            scale, zero = self.out_detail["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    def close(self) -> None:
        self.interpreter = None


ENGINE = LiteRtEngine
