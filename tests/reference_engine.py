"""An engine added as docs/architecture.md's recipe says: ONNX's own reference evaluator
(``onnx.reference``, pure numpy), one class, one entry in ``ENGINES`` (tests/test_tables.py
adds it for the length of a test)."""

from __future__ import annotations

import numpy as np

from motivnet_edge.targets.engine import Engine, InputInfo, join_outputs


class ReferenceEngine(Engine):
    name = "onnx-reference"
    devices = ("cpu",)

    def _load(self) -> InputInfo:
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(self.path))
        self.session = ReferenceEvaluator(model)
        first = model.graph.input[0]
        self.input_name = first.name
        dims = tuple(d.dim_value or -1 for d in first.type.tensor_type.shape.dim)
        self.settings = {"runtime": f"onnx {onnx.__version__} reference"}
        return InputInfo(dims, "float32", self.crop, dynamic_batch=dims[0] == -1)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return join_outputs(self.session.run(None, {self.input_name: batch}))


ENGINE = ReferenceEngine
