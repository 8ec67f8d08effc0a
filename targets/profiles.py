"""Hardware target profiles as data: which artifact, which engine, which device and options.

``auto`` probes the host: a Tegra release file (Jetson), the device-tree model (Raspberry Pi),
OpenVINO's devices (Intel NPU, GPU) and ONNX Runtime's providers.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from motivnet_edge.targets.engine import ENGINES, EngineOptions
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import artifact_name


@dataclass(frozen=True)
class Choice:
    """engine and device; the artifact it runs from a compress output folder, by precision
    (``int8``, ``fp32``) and format; the engine's precision hint and extra options."""

    engine: str
    artifact_precision: str
    format: str
    device: str = "CPU"
    precision: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def artifact(self) -> str:
        """The file name inside a compress output folder."""
        return artifact_name("student", self.artifact_precision, self.format)


@dataclass(frozen=True)
class DeviceOS:
    """An operating system a device runs, as far as its wheels care."""

    python: str
    glibc: str
    description: str


# The OSes devices run today, for bundles (--os): the Python and glibc their wheels must fit
DEVICE_OS: dict[str, DeviceOS] = {
    "rpios-trixie": DeviceOS("3.13", "2.41", "Raspberry Pi OS 13 (Debian 13 trixie), 2025-"),
    "rpios-bookworm": DeviceOS("3.11", "2.36", "Raspberry Pi OS 12 (Debian 12 bookworm)"),
    "debian-13": DeviceOS("3.13", "2.41", "Debian 13 trixie"),
    "debian-12": DeviceOS("3.11", "2.36", "Debian 12 bookworm"),
    "jetpack6": DeviceOS("3.10", "2.35", "NVIDIA JetPack 6 (Ubuntu 22.04)"),
    "ubuntu-22.04": DeviceOS("3.10", "2.35", "Ubuntu 22.04 LTS"),
    "ubuntu-24.04": DeviceOS("3.12", "2.39", "Ubuntu 24.04 LTS"),
}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    choices: tuple[Choice, ...]  # in order of preference
    os: str = "debian-12"  # what a bundle for the target is built for unless --os says


PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("cpu", "any CPU: ONNX Runtime, else LiteRT, else OpenVINO", (
        Choice("onnxruntime", "int8", "onnx", "cpu"),
        Choice("litert", "int8", "tflite"),
        Choice("openvino", "int8", "openvino", "CPU", "f32"),
        Choice("openvino", "int8", "onnx", "CPU", "f32"))),
    Profile("rpi", "Raspberry Pi: LiteRT INT8 with XNNPACK, else ONNX Runtime", (
        Choice("litert", "int8", "tflite"),
        Choice("onnxruntime", "int8", "onnx", "cpu")), "rpios-trixie"),
    Profile("jetson", "NVIDIA Jetson: ONNX Runtime TensorRT fp16 with an engine cache, else CUDA "
            "(the INT8 ONNX file in TensorRT int8 where no FP32 file is there)", (
        Choice("onnxruntime", "fp32", "onnx", "tensorrt", "fp16"),
        Choice("onnxruntime", "fp32", "onnx", "cuda"),
        Choice("onnxruntime", "int8", "onnx", "tensorrt", "int8"),
        Choice("onnxruntime", "int8", "onnx", "cuda")), "jetpack6"),
    Profile("intel-npu", "Intel NPU through OpenVINO (static shape)", (
        Choice("openvino", "int8", "openvino", "NPU", None, {"static_shape": True}),
        Choice("openvino", "int8", "onnx", "NPU", None, {"static_shape": True}))),
    Profile("intel-gpu", "Intel GPU through OpenVINO", (
        Choice("openvino", "int8", "openvino", "GPU", "f16"),
        Choice("openvino", "int8", "onnx", "GPU", "f16"))),
    Profile("intel-cpu", "Intel CPU through OpenVINO, f32 precision hint", (
        Choice("openvino", "int8", "openvino", "CPU", "f32"),
        Choice("openvino", "int8", "onnx", "CPU", "f32"))),
)}


def passed_files(folder: Path) -> set[str] | None:
    """The artifact files of a compress output folder that its manifest lists as passing the
    gate (a rejected file's role starts with ``rejected-``); None when there is no manifest."""
    from motivnet_edge.targets.metadata import MANIFEST, read_manifest_entries

    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return {e["path"] for e in read_manifest_entries(path)
            if not str(e.get("role", "")).startswith("rejected")}


def folder_choices(profile: Profile, folder: Path) -> tuple[list[Choice], list[str]]:
    """The profile's choices whose file is in ``folder`` (and passed the gate where a manifest
    says), in order of preference, and why the others are left out."""
    passed = passed_files(folder)
    kept, reasons = [], []
    for c in profile.choices:
        if not (Path(folder) / c.artifact).is_file():
            reasons.append(f"{c.engine}/{c.device}: no {c.artifact} in {folder}")
        elif passed is not None and c.artifact not in passed:
            reasons.append(f"{c.engine}/{c.device}: {c.artifact} did not pass the gate")
        else:
            kept.append(c)
    return kept, reasons


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return ""


class HostFacts:
    """What the host is, read from the files and libraries that tell. Each fact is probed on
    first use, so a daemon whose first choice runs imports only that engine's runtime (OpenVINO's
    probe alone adds about 30 MB to the process)."""

    @cached_property
    def device_tree_model(self) -> str:
        return _read("/proc/device-tree/model")

    @cached_property
    def tegra_release(self) -> str:
        return _read("/etc/nv_tegra_release")[:80]

    @cached_property
    def ort_providers(self) -> list[str] | None:
        if not importlib.util.find_spec("onnxruntime"):
            return None
        import onnxruntime as ort

        return ort.get_available_providers()

    @cached_property
    def openvino_devices(self) -> list[str] | None:
        if not importlib.util.find_spec("openvino"):
            return None
        import openvino as ov

        return ov.Core().available_devices

    @cached_property
    def litert(self) -> bool:
        return bool(importlib.util.find_spec("ai_edge_litert")
                    or importlib.util.find_spec("tflite_runtime"))

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("device_tree_model", "tegra_release",
                                               "ort_providers", "openvino_devices", "litert")}


def host_facts() -> HostFacts:
    return HostFacts()


def choice_available(choice: Choice, facts: HostFacts) -> str | None:
    """None when ``choice`` can run here, else the reason it cannot."""
    extra = ENGINES[choice.engine].extra
    if choice.engine == "litert":
        return None if facts.litert else f"no LiteRT: pip install 'motivnet-edge[{extra}]'"
    if choice.engine == "onnxruntime":
        providers = facts.ort_providers
        if providers is None:
            return f"no onnxruntime: pip install 'motivnet-edge[{extra}]'"
        need = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                "tensorrt": "TensorrtExecutionProvider"}[choice.device]
        return None if need in providers else \
            f"onnxruntime has no {need} (providers: {', '.join(providers)})"
    devices = facts.openvino_devices
    if devices is None:
        return f"no OpenVINO: pip install 'motivnet-edge[{extra}]'"
    return None if choice.device in devices else \
        f"OpenVINO sees no {choice.device} (devices: {', '.join(devices)})"


def profile_status(profile: Profile, facts: HostFacts, folder: Path | None = None
                   ) -> tuple[Choice | None, list[str]]:
    """The first choice that can run here (and, given a compress output folder, whose file is
    there), and the reasons the others cannot."""
    reasons = []
    if profile.name == "rpi" and "raspberry pi" not in facts.device_tree_model.lower():
        reasons.append("not a Raspberry Pi (no such device-tree model)")
    if profile.name == "jetson" and not facts.tegra_release:
        reasons.append("not a Jetson (no /etc/nv_tegra_release)")
    choices = profile.choices
    if folder is not None:
        choices, missing = folder_choices(profile, folder)
        reasons += missing
    for c in choices:
        why = choice_available(c, facts)
        if why is None:
            return c, reasons
        reasons.append(f"{c.engine}/{c.device}: {why}")
    return None, reasons


def auto_profile(facts: HostFacts, folder: Path | None = None) -> str:
    """The best profile for this host (and the files of ``folder``, when given)."""
    order = []
    if facts.tegra_release:
        order.append("jetson")
    if "raspberry pi" in facts.device_tree_model.lower():
        order.append("rpi")
    order += ["intel-npu", "intel-gpu", "cpu"]
    for name in order:
        if profile_status(PROFILES[name], facts, folder)[0] is not None:
            return name
    raise MotivnetError("no target can run here: install one engine, e.g. "
                        "pip install 'motivnet-edge[onnx]'")


def resolve(target: str, artifact: str | Path, engine: str | None = None,
            threads: int | None = None, cache_dir: str | None = None
            ) -> tuple[Path, str, EngineOptions, str]:
    """(artifact file, engine, options, profile name) for ``target`` and an artifact file or a
    compress output folder."""
    facts = host_facts()
    artifact = Path(artifact)
    folder = artifact if artifact.is_dir() else None
    name = auto_profile(facts, folder) if target == "auto" else target
    if name not in PROFILES:
        raise MotivnetError(f"unknown target {target!r}; known: auto, {', '.join(PROFILES)}")
    choice, reasons = profile_status(PROFILES[name], facts, folder)
    if choice is None:
        raise MotivnetError(f"target {name} cannot run here: {'; '.join(reasons)}")
    path = artifact / choice.artifact if artifact.is_dir() else artifact
    options = EngineOptions(device=choice.device, threads=threads, cache_dir=cache_dir,
                            precision=choice.precision, extra=dict(choice.extra))
    chosen = engine or choice.engine
    if engine and engine != choice.engine:
        options = EngineOptions(threads=threads, cache_dir=cache_dir)
    return path, chosen, options, name


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--artifacts", type=Path, help="a compress output folder: which of its "
                   "files each profile would run (default: every profile's first choice)")


def run(args) -> int:
    """``motivnet-edge targets``: every profile, whether it can run here, and why not."""
    import json

    facts = host_facts()
    folder = args.artifacts
    if folder is not None and not folder.is_dir():
        raise MotivnetError(f"--artifacts {folder} is not a folder")
    try:
        best = auto_profile(facts, folder)
    except MotivnetError:
        best = None
    rows = []
    for p in PROFILES.values():
        choice, reasons = profile_status(p, facts, folder)
        rows.append({"target": p.name, "runs_here": choice is not None,
                     "engine": f"{choice.engine}/{choice.device}" if choice else "",
                     "artifact": choice.artifact if choice else "", "auto": p.name == best,
                     "why_not": "; ".join(reasons) if choice is None else "",
                     "note": "; ".join(reasons) if choice is not None else "",
                     "description": p.description})
    if args.json:
        print(json.dumps({"host": facts.as_dict(), "targets": rows}, indent=2))
        return 0
    for r in rows:
        mark = "yes" if r["runs_here"] else "no"
        auto = " (auto)" if r["auto"] else ""
        detail = f"{r['engine']} {r['artifact']}" if r["runs_here"] else r["why_not"]
        if r["runs_here"] and r["note"]:
            detail += f" (note: {r['note']})"
        print(f"{r['target'] + auto:<18} {mark:<4} {detail}")
    return 0
