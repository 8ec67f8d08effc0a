"""RKNN engine for .rknn on a Rockchip board's NPU: rknn-toolkit-lite2 (``rknnlite``, PyPI,
aarch64, cp311/cp312) over ``librknnrt.so``, Rockchip's runtime library, which comes with the
board's image (or from Rockchip's rknn-toolkit2 repository, ``rknpu2/runtime/Linux/
librknn_api/aarch64/librknnrt.so``, copied to /usr/lib), not from PyPI. The graph has a batch
of 1: a batch is run one face at a time. Devices: the NPU's cores, chosen by the runtime
(``auto``) or all of them (``all``)."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import numpy as np

from motivnet_edge.targets.engine import Engine, InputInfo, join_outputs, runtime_installed
from motivnet_edge.targets.errors import MotivnetError

RUNTIME_LIBRARY = "librknnrt.so"
LIBRARY_HINT = (f"{RUNTIME_LIBRARY} (Rockchip's NPU runtime) is missing: it comes with the "
                f"board's Rockchip image, or copy rknpu2/runtime/Linux/librknn_api/aarch64/"
                f"{RUNTIME_LIBRARY} from github.com/airockchip/rknn-toolkit2 to /usr/lib")


def runtime_library() -> str | None:
    """Where the dynamic loader finds librknnrt.so, None when it does not."""
    for folder in ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu"):
        if (Path(folder) / RUNTIME_LIBRARY).is_file():
            return str(Path(folder) / RUNTIME_LIBRARY)
    return ctypes.util.find_library("rknnrt")


class RknnEngine(Engine):
    name = "rknn"
    devices = ("auto", "all")

    @classmethod
    def devices_here(cls) -> list[str] | None:
        found = super().devices_here()
        return found if found and runtime_library() else None

    @classmethod
    def unavailable(cls) -> str | None:
        if not runtime_installed(cls.name):
            return ("no rknn-toolkit-lite2: pip install 'motivnet-edge[rknn]' on the board "
                    "(aarch64, Python 3.11 or 3.12; none is built for other CPUs)")
        return None if runtime_library() else LIBRARY_HINT

    def _load(self) -> InputInfo:
        from rknnlite.api import RKNNLite

        if runtime_library() is None:
            raise MotivnetError(f"{self.path}: {LIBRARY_HINT}")
        self.rknn = RKNNLite(verbose=False)
        if self.rknn.load_rknn(str(self.path)) != 0:
            raise MotivnetError(f"{self.path}: rknn-toolkit-lite2 could not load it")
        mask = {"auto": RKNNLite.NPU_CORE_AUTO,
                "all": getattr(RKNNLite, "NPU_CORE_0_1_2", RKNNLite.NPU_CORE_AUTO)}
        device = self.options.device.lower()
        if device not in mask:
            raise MotivnetError(f"rknn device {device!r} is not one of {self.devices}")
        if self.rknn.init_runtime(core_mask=mask[device]) != 0:
            raise MotivnetError(f"{self.path}: the NPU runtime did not start (is this a "
                                f"Rockchip board with the NPU driver? {RUNTIME_LIBRARY}: "
                                f"{runtime_library()})")
        self.settings = {"device": device, "runtime": RUNTIME_LIBRARY}
        shape = (1, *self.crop.input_shape[1:])
        return InputInfo(shape, "float32", self.crop, dynamic_batch=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        rows = []
        for x in batch:
            outs = self.rknn.inference(inputs=[x[None]], data_format="nchw")
            rows.append(join_outputs(np.asarray(o, np.float32).reshape(1, -1) for o in outs))
        return np.concatenate(rows)

    def close(self) -> None:
        if getattr(self, "rknn", None) is not None:
            self.rknn.release()
        self.rknn = None


ENGINE = RknnEngine
