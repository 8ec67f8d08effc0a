"""OpenVINO engine: CPU, GPU, NPU or AUTO; LATENCY hint; explicit inference precision.

OpenVINO runs "FP32" models in bf16 on CPUs with AMX unless told otherwise, so the precision
hint is always set and reported. The NPU needs static shapes: the batch is fixed to 1 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motivnet_edge.targets.engine import Engine, InputInfo, join_outputs, runtime_installed
from motivnet_edge.targets.errors import MotivnetError

DEVICES = ("CPU", "GPU", "NPU", "AUTO")


@dataclass(frozen=True)
class OpenVinoExtra:
    """OpenVINO's own options: ``static_shape`` fixes the batch to 1 (always so on the NPU)."""

    static_shape: bool = False


def default_precision(device: str) -> str:
    """The inference precision asked for when none is given: f32 on the CPU (OpenVINO would
    run bf16 on CPUs with AMX), f16 on a GPU or NPU."""
    return "f16" if device.upper() in ("GPU", "NPU") else "f32"


class OpenVinoEngine(Engine):
    name = "openvino"
    devices = DEVICES[:3]  # AUTO is taken at load, never chosen by a profile or a bench row
    Extra = OpenVinoExtra

    @classmethod
    def devices_here(cls) -> list[str] | None:
        if not runtime_installed(cls.name):
            return None
        import openvino as ov

        found = {d.split(".")[0] for d in ov.Core().available_devices}  # GPU.0, GPU.1 -> GPU
        return [d for d in cls.devices if d in found]

    def _load(self) -> InputInfo:
        import openvino as ov

        device = self.options.device.upper()
        if device not in DEVICES:
            raise MotivnetError(f"openvino device {device!r} is not one of {DEVICES}")
        core = ov.Core()
        named = {*core.available_devices, *(d.split(".")[0] for d in core.available_devices)}
        if device != "AUTO" and device not in named:
            raise MotivnetError(f"openvino device {device} is not available here "
                                f"(available: {core.available_devices})")
        model = core.read_model(str(self.path))
        static = device == "NPU" or self.extra.static_shape
        if static:
            shape = list(model.input(0).get_partial_shape().get_min_shape())
            model.reshape({model.input(0).any_name: [1, *shape[1:]]})
        precision = self.options.precision or default_precision(device)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if self.options.threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.options.threads
        if self.options.cache_dir:
            config["CACHE_DIR"] = self.options.cache_dir
        if device == "NPU":
            config.pop("INFERENCE_PRECISION_HINT")  # the NPU picks its own
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        reported = {}
        for key in ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS"):
            try:
                value = self.compiled.get_property(key)
                reported[key] = value.to_string() if hasattr(value, "to_string") else str(value)
            except RuntimeError:
                pass
        self.settings = {"device": device, **reported}
        pshape = self.compiled.input(0).get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else -1 for d in pshape)
        dtype = self.compiled.input(0).get_element_type().to_dtype().name
        return InputInfo(dims, dtype, self.crop, dynamic_batch=dims[0] == -1)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: batch})
        return join_outputs(result[out] for out in self.compiled.outputs)

    def close(self) -> None:
        self.request = self.compiled = None


ENGINE = OpenVinoEngine
