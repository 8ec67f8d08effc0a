"""Hardware target profiles as data: which artifact, which engine, which device and options,
how the host is recognised, where ``auto`` ranks it, and which wheels it needs from elsewhere.

``auto`` is a sort over :data:`PROFILES`: among the profiles whose host test matches (a Tegra
release file for a Jetson, the device-tree model for a Raspberry Pi; none for the rest), by
``auto`` rank, the first whose engine and device this host has. Engines say which devices they
have here (:meth:`motivnet_edge.targets.engine.Engine.devices_here`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from motivnet_edge.targets.engine import ENGINES, EngineOptions, engine_class
from motivnet_edge.targets.engines.openvino import OpenVinoExtra
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.formats import artifact_name
from motivnet_edge.targets.manifest import Manifest


@dataclass(frozen=True)
class Choice:
    """engine and device; the artifact it runs from a compress output folder, by precision
    (``int8``, ``fp32``) and format; the engine's precision hint and extra options."""

    engine: str
    artifact_precision: str
    format: str
    device: str = ""  # "": the engine's first device
    precision: str | None = None
    extra: object | None = None  # the engine's own options (its ``Extra`` dataclass)

    @property
    def device_name(self) -> str:
        """The device it runs on, the engine's default spelled out."""
        return self.device or engine_class(self.engine).devices[0]

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
class HostTest:
    """How a profile's hardware is recognised: a :class:`HostFacts` text that holds ``contains``
    (lower case; "" for any text at all), else ``missing`` is the reason."""

    fact: str
    contains: str
    missing: str

    def matches(self, facts: HostFacts) -> bool:
        """True when the host's fact holds the text."""
        text = getattr(facts, self.fact).lower()
        return bool(text) and self.contains in text


@dataclass(frozen=True)
class VendorWheel:
    """An engine wheel no package registry has for a platform: what it is, how to get it, and
    the package name install.sh takes from local-wheels/."""

    platform: str
    what: str
    how: str
    package: str


@dataclass(frozen=True)
class Profile:
    """A target: its choices in order of preference; the OS a bundle is built for unless --os
    says; how its host is recognised (None: any host); its rank for ``auto`` (lower first;
    None: only when named); the engine wheels that come from elsewhere."""

    name: str
    description: str
    choices: tuple[Choice, ...]
    os: str = "debian-12"
    host: HostTest | None = None
    auto: int | None = None
    vendor_wheels: tuple[VendorWheel, ...] = ()

    def vendor_wheel(self, platform: str) -> VendorWheel | None:
        """The engine wheel a bundle for ``platform`` cannot download, if any."""
        return next((w for w in self.vendor_wheels if w.platform == platform), None)


NPU = OpenVinoExtra(static_shape=True)
JETSON_ORT = VendorWheel(
    "aarch64", "onnxruntime-gpu for Jetson (CUDA and TensorRT providers)",
    "NVIDIA builds it for each JetPack release: download the wheel for this JetPack and Python "
    "from NVIDIA's Jetson Zoo (elinux.org/Jetson_Zoo#ONNX_Runtime) or the jetson-ai-lab pip "
    "index, put it into local-wheels/ beside install.sh, then run install.sh", "onnxruntime-gpu")

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("cpu", "any CPU: ONNX Runtime, else LiteRT, else OpenVINO", (
        Choice("onnxruntime", "int8", "onnx", "cpu"),
        Choice("litert", "int8", "tflite"),
        Choice("openvino", "int8", "openvino", "CPU", "f32"),
        Choice("openvino", "int8", "onnx", "CPU", "f32")), auto=9),
    Profile("rpi", "Raspberry Pi: LiteRT INT8 with XNNPACK, else ONNX Runtime", (
        Choice("litert", "int8", "tflite"),
        Choice("onnxruntime", "int8", "onnx", "cpu")), "rpios-trixie",
        HostTest("device_tree_model", "raspberry pi",
                 "not a Raspberry Pi (no such device-tree model)"), 1),
    Profile("jetson", "NVIDIA Jetson: ONNX Runtime TensorRT fp16 with an engine cache, else CUDA "
            "(the INT8 ONNX file in TensorRT int8 where no FP32 file is there)", (
        Choice("onnxruntime", "fp32", "onnx", "tensorrt", "fp16"),
        Choice("onnxruntime", "fp32", "onnx", "cuda"),
        Choice("onnxruntime", "int8", "onnx", "tensorrt", "int8"),
        Choice("onnxruntime", "int8", "onnx", "cuda")), "jetpack6",
        HostTest("tegra_release", "", "not a Jetson (no /etc/nv_tegra_release)"), 0,
        (JETSON_ORT,)),
    Profile("rockchip", "Rockchip RK3588/RK3566/RK3568 NPU: RKNN INT8 through "
            "rknn-toolkit-lite2 (librknnrt.so from the board's image), else ONNX Runtime on the "
            "CPU", (
        Choice("rknn", "int8", "rknn", "auto"),
        Choice("onnxruntime", "int8", "onnx", "cpu")), "debian-12",
        HostTest("device_tree_compatible", "rockchip,rk35",
                 "not a Rockchip RK35xx board (no rockchip,rk35xx in "
                 "/proc/device-tree/compatible)"), 1),
    Profile("intel-npu", "Intel NPU through OpenVINO (static shape)", (
        Choice("openvino", "int8", "openvino", "NPU", None, NPU),
        Choice("openvino", "int8", "onnx", "NPU", None, NPU)), auto=2),
    Profile("intel-gpu", "Intel GPU through OpenVINO", (
        Choice("openvino", "int8", "openvino", "GPU", "f16"),
        Choice("openvino", "int8", "onnx", "GPU", "f16")), auto=3),
    Profile("intel-cpu", "Intel CPU through OpenVINO, f32 precision hint", (
        Choice("openvino", "int8", "openvino", "CPU", "f32"),
        Choice("openvino", "int8", "onnx", "CPU", "f32"))),
)}


def passed_files(folder: Path) -> set[str] | None:
    """The artifact files of a compress output folder that its manifest lists as passing the
    gate (a rejected file's role starts with ``rejected-``); None when there is no manifest."""
    manifest = Manifest.find(folder)
    return None if manifest is None else manifest.passed()


def folder_choices(profile: Profile, folder: Path) -> tuple[list[Choice], list[str]]:
    """The profile's choices whose file is in ``folder`` (and passed the gate where a manifest
    says), in order of preference, and why the others are left out."""
    passed = passed_files(folder)
    kept, reasons = [], []
    for c in profile.choices:
        if not (Path(folder) / c.artifact).is_file():
            reasons.append(f"{c.engine}/{c.device_name}: no {c.artifact} in {folder}")
        elif passed is not None and c.artifact not in passed:
            reasons.append(f"{c.engine}/{c.device_name}: {c.artifact} did not pass the gate")
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

    def __init__(self) -> None:
        self._devices: dict[str, list[str] | None] = {}

    @cached_property
    def device_tree_model(self) -> str:
        """The device-tree model (``Raspberry Pi 5 Model B Rev 1.0``), empty elsewhere."""
        return _read("/proc/device-tree/model")

    @cached_property
    def device_tree_compatible(self) -> str:
        """The device tree's compatible strings, space-separated (``radxa,rock-5b
        rockchip,rk3588``), empty elsewhere."""
        return _read("/proc/device-tree/compatible").replace("\x00", " ")

    @cached_property
    def tegra_release(self) -> str:
        """The first line of /etc/nv_tegra_release (a Jetson's L4T release), empty elsewhere."""
        return _read("/etc/nv_tegra_release")[:80]

    def devices(self, engine: str) -> list[str] | None:
        """The devices ``engine`` has here (None: its runtime is not installed), asked once."""
        if engine not in self._devices:
            self._devices[engine] = engine_class(engine).devices_here()
        return self._devices[engine]

    def as_dict(self) -> dict:
        """Every fact, and the devices of every engine (what ``targets --json`` prints)."""
        return {"device_tree_model": self.device_tree_model,
                "device_tree_compatible": self.device_tree_compatible,
                "tegra_release": self.tegra_release,
                "engines": {name: self.devices(name) for name in ENGINES}}


def host_facts() -> HostFacts:
    """A fresh, lazily probed view of this host."""
    return HostFacts()


def choice_available(choice: Choice, facts: HostFacts) -> str | None:
    """None when ``choice`` can run here, else the reason it cannot."""
    here = facts.devices(choice.engine)
    if here is None:
        return engine_class(choice.engine).unavailable() or \
            f"no {choice.engine}: pip install 'motivnet-edge[{ENGINES[choice.engine].extra}]'"
    if choice.device_name.lower() in (d.lower() for d in here):
        return None
    label = engine_class(choice.engine).device_label
    return (f"{choice.engine} has no {label(choice.device_name)} here (it has: "
            f"{', '.join(label(d) for d in here) or 'nothing'})")


def profile_status(profile: Profile, facts: HostFacts, folder: Path | None = None
                   ) -> tuple[Choice | None, list[str]]:
    """The first choice that can run here (and, given a compress output folder, whose file is
    there), and the reasons the others cannot."""
    reasons = []
    if profile.host is not None and not profile.host.matches(facts):
        reasons.append(profile.host.missing)
    choices = profile.choices
    if folder is not None:
        choices, missing = folder_choices(profile, folder)
        reasons += missing
    for c in choices:
        why = choice_available(c, facts)
        if why is None:
            return c, reasons
        reasons.append(f"{c.engine}/{c.device_name}: {why}")
    return None, reasons


def auto_order(facts: HostFacts) -> list[Profile]:
    """The profiles ``auto`` considers here: ranked ones whose host test matches, by rank."""
    return sorted((p for p in PROFILES.values() if p.auto is not None
                   and (p.host is None or p.host.matches(facts))), key=lambda p: p.auto)


def auto_profile(facts: HostFacts, folder: Path | None = None) -> str:
    """The best profile for this host (and the files of ``folder``, when given)."""
    for profile in auto_order(facts):
        if profile_status(profile, facts, folder)[0] is not None:
            return profile.name
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
    options = EngineOptions(device=choice.device_name, threads=threads, cache_dir=cache_dir,
                            precision=choice.precision, extra=choice.extra)
    chosen = engine or choice.engine
    if engine and engine != choice.engine:
        options = EngineOptions(threads=threads, cache_dir=cache_dir)
    return path, chosen, options, name


def target_rows(facts: HostFacts, folder: Path | None = None) -> list[dict]:
    """Every profile as a row: whether it runs here, on what, why not, and which is ``auto``'s
    pick (what ``motivnet-edge targets`` prints)."""
    try:
        best = auto_profile(facts, folder)
    except MotivnetError:
        best = None
    rows = []
    for p in PROFILES.values():
        choice, reasons = profile_status(p, facts, folder)
        rows.append({"target": p.name, "runs_here": choice is not None,
                     "engine": f"{choice.engine}/{choice.device_name}" if choice else "",
                     "artifact": choice.artifact if choice else "", "auto": p.name == best,
                     "why_not": "; ".join(reasons) if choice is None else "",
                     "note": "; ".join(reasons) if choice is not None else "",
                     "description": p.description})
    return rows
