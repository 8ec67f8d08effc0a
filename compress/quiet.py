"""Known-harmless noise from the converters, silenced so a log stays readable: LiteRT-Torch's
rich progress lines, absl/glog INFO lines from the TFLite converter, JAX probing for TPUs,
torch's notice about Enum constants, onnxscript's per-node INFO. Real warnings and errors of
these libraries still show."""

from __future__ import annotations

import logging
import os
import warnings

# harmless messages by logger name -> text they contain
KNOWN = {
    "torch.utils._pytree": "is an Enum subclass and is now natively supported",
    "torch.utils.cpp_extension": "No CUDA runtime is found",
    "jax._src.xla_bridge": "",
    "root": "Your model is converted in training mode",
}


class _Known(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = KNOWN.get(record.name)
        return text is None or (text != "" and text not in record.getMessage())


def quiet_third_party() -> None:
    """Call before the converters are imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # absl INFO of the TFLite converter
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for TPUs and GPUs
    for name in KNOWN:
        logging.getLogger(None if name == "root" else name).addFilter(_Known())
    for name in ("onnxscript", "onnx_ir", "nncf"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # JAX (pulled in by the TFLite tools) warns at every fork, which OpenVINO's converter does
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")


def quiet_litert() -> None:
    """LiteRT-Torch prints its conversion steps with rich to the terminal or the log."""
    try:
        from litert_torch import progress
    except ImportError:
        return
    progress.console.quiet = True
