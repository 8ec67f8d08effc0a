"""ONNX Runtime engine: CPU, CUDA, or TensorRT (fp16/int8, engine cache) as on a Jetson."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motivnet_edge.targets.engine import Engine, InputInfo, join_outputs, runtime_installed
from motivnet_edge.targets.errors import MotivnetError

# device -> the execution provider that runs it (cuda:N is the Nth GPU's CUDA provider)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
             "tensorrt": "TensorrtExecutionProvider"}

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16",
               "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def session_options(threads: int | None, spinning: bool = False):
    """ONNX Runtime's session options: ``threads`` intra-op threads (None: its own choice) and
    idle threads that spin only when asked (spinning takes the cores other work needs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    spin = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def cpu_session(path, options=None):
    """A plain ONNX Runtime session on the CPU (for reading a file's metadata and shapes, or
    running a graph exactly as written): no engine, no manifest."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), options, providers=[PROVIDERS["cpu"]])


def providers_for(device: str, precision: str | None, cache_dir: str | None) -> list:
    """Provider list for ``device`` (cpu, cuda, cuda:N, tensorrt), most preferred first."""
    device = device.lower()
    cpu, cuda, trt = (PROVIDERS[d] for d in ("cpu", "cuda", "tensorrt"))
    if device == "cpu":
        return [cpu]
    if device == "cuda":
        return [cuda, cpu]
    if device.startswith("cuda:") and device[5:].isdigit():  # one GPU of several (a rank's)
        return [(cuda, {"device_id": int(device[5:])}), cpu]
    if device == "tensorrt":
        options = {"trt_fp16_enable": precision in ("fp16", "int8"),
                   "trt_int8_enable": precision == "int8"}
        if cache_dir:
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache_dir,
                           trt_timing_cache_enable=True, trt_timing_cache_path=cache_dir)
        return [(trt, options), cuda, cpu]
    raise MotivnetError(f"onnxruntime device {device!r} is not one of cpu, cuda, cuda:N, tensorrt")


@dataclass(frozen=True)
class OrtExtra:
    """ONNX Runtime's own options: ``spinning`` lets idle intra-op threads spin (off: they
    would take the cores the face detector needs between inferences)."""

    spinning: bool = False


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"
    devices = tuple(PROVIDERS)
    Extra = OrtExtra

    @classmethod
    def devices_here(cls) -> list[str] | None:
        if not runtime_installed(cls.name):
            return None
        import onnxruntime as ort

        providers = ort.get_available_providers()
        return [d for d, p in PROVIDERS.items() if p in providers]

    @classmethod
    def device_label(cls, device: str) -> str:
        return PROVIDERS.get(device.lower().split(":")[0], device)

    def _load(self) -> InputInfo:
        import onnxruntime as ort

        # Idle intra-op threads spin by default, taking the cores the face detector needs
        # between inferences (measured side by side on 2 cores: Haar detection 42 -> 30 ms per
        # 640x480 frame without spinning, inference 2.1 -> 2.3 ms).
        opts = session_options(self.options.threads, self.extra.spinning)
        weights_only = self.metadata.get("precision") == "int8-weights"
        if weights_only:
            # let constant folding turn int8 weights + DequantizeLinear into float weights once
            # at load (ONNX Runtime keeps them for QDQ fusion otherwise, and dequantises every
            # run: measured 3.2 ms against 1.1 ms for the FP32 file, 2 threads)
            opts.add_session_config_entry("session.disable_quant_qdq", "1")
        wanted = providers_for(self.options.device, self.options.precision,
                               self.options.cache_dir)
        available = set(ort.get_available_providers())
        names = [p[0] if isinstance(p, tuple) else p for p in wanted]
        if names[0] not in available:
            raise MotivnetError(f"onnxruntime here has no {names[0]} (available: "
                                f"{sorted(available)}); on a Jetson install NVIDIA's "
                                f"onnxruntime-gpu build")
        self.session = ort.InferenceSession(str(self.path), opts, providers=wanted)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.settings = {"providers": self.session.get_providers(),
                         "threads": self.options.threads, "spinning": self.extra.spinning,
                         "weights_folded_to_float": weights_only}
        shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape)
        return InputInfo(shape, _ORT_DTYPES.get(inp.type, "float32"), self.crop,
                         dynamic_batch=shape[0] == -1)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return join_outputs(self.session.run(None, {self.input_name: batch}))

    def close(self) -> None:
        self.session = None


ENGINE = OnnxRuntimeEngine
