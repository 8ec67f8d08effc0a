"""What machine a figure was measured on: CPU model and the flags that decide int8 and bf16
speed, accelerator, OS, and the versions of the engines. Printed beside every speed figure."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

# flags that matter for inference speed, by architecture
X86_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
             "amx_int8", "amx_bf16")
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")
PACKAGES = ("onnxruntime", "openvino", "ai-edge-litert", "torch", "opencv-python-headless")


def cpu_info(cpuinfo: str | None = None) -> dict:
    """Model name, core count and the speed-relevant flags, from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
    wanted = X86_FLAGS if platform.machine() in ("x86_64", "AMD64", "i686") else ARM_FLAGS
    return {"cpu": model, "cores": os.cpu_count(), "arch": platform.machine(),
            "flags": [f for f in wanted if f in flags]}


def native_bf16(info: dict) -> bool:
    return any(f in info["flags"] for f in ("avx512_bf16", "amx_bf16", "bf16"))


def accelerator() -> str:
    """An NVIDIA GPU (its driver's name for it), a Jetson, or none. Read from the driver's
    files, so nothing heavy is imported to ask."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        for info in sorted(gpus.glob("*/information")):
            for line in info.read_text(errors="replace").splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
        return "NVIDIA GPU"
    if Path("/etc/nv_tegra_release").is_file():
        return "NVIDIA Jetson (Tegra)"
    return "none"


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def host_info() -> dict:
    info = cpu_info()
    return {**info, "accelerator": accelerator(),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "hostname": platform.node(),
            "versions": versions()}


def describe(info: dict) -> str:
    """One line: ``AMD EPYC, 2 cores, x86_64 [avx2 fma], accelerator none``."""
    flags = " ".join(info["flags"]) or "none of " + "/".join(X86_FLAGS[:4])
    return (f"{info['cpu']}, {info['cores']} cores, {info['arch']} [{flags}], "
            f"accelerator {info.get('accelerator', 'none')}")
