"""``motivnet-edge bundle``: one file that installs a device with no network.

A bundle is a ``.tar.gz`` holding one folder: the one artifact the target runs (the profile's
first choice among the files of the model folder that passed the gate) with its manifest and
card under ``model/``, a config template for the target, the systemd unit, ``install.sh``,
the first-boot files for image builders, a short README, the project's own wheel and, with
``--wheels``, every wheel the device install needs for the platform and Python. ``SHA256SUMS``
(for ``sha256sum -c`` on the device) and ``manifest.json`` list the sha256 of every file.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

from motivnet_edge.edge.packaging.bundle_files import (
    BUNDLE_ENV,
    BUNDLE_MANIFEST,
    DEVICE_FILES,
    SUMS,
    bundle_readme,
    config_template,
    file_list,
    unit_template,
)
from motivnet_edge.edge.shipped import default_model
from motivnet_edge.targets.engine import ENGINES
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path
from motivnet_edge.targets.manifest import Manifest
from motivnet_edge.targets.metadata import artifact_files, read_metadata
from motivnet_edge.targets.profiles import DEVICE_OS, PROFILES, Choice, folder_choices

log = logging.getLogger(__name__)

PLATFORMS = ("aarch64", "x86_64")
# The oldest glibc manylinux wheels are built for; the newest is the device OS's (--os, or
# --glibc). pip matches only the platform tags it is given, and ai-edge-litert 2.x is tagged
# only manylinux_2_27, so every tag in between is passed.
MANYLINUX_FROM = 17
def platform_tags(platform: str, glibc: str) -> list[str]:
    """Every manylinux tag a device of ``platform`` with glibc ``glibc`` accepts."""
    try:
        major, minor = (int(v) for v in glibc.split("."))
    except ValueError as exc:
        raise MotivnetError(f"--glibc {glibc!r}: expected a version such as 2.36") from exc
    if major != 2 or minor < MANYLINUX_FROM:
        raise MotivnetError(f"--glibc {glibc}: must be 2.{MANYLINUX_FROM} or newer")
    return [f"manylinux_2_{n}_{platform}" for n in range(MANYLINUX_FROM, minor + 1)] + \
        [f"manylinux2014_{platform}"]


def pick_artifact(target: str, folder: Path) -> Choice:
    """The profile's first choice whose file is in ``folder`` and passed the gate."""
    kept, reasons = folder_choices(PROFILES[target], folder)
    if not kept:
        raise MotivnetError(f"no artifact in {folder} for target {target}: "
                            f"{'; '.join(reasons)}")
    return kept[0]


def project_source() -> Path | None:
    """The source tree of this install (an editable install or a checkout), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def build_project_wheel(dest: Path, given: Path | None) -> Path:
    """The project's own wheel in ``dest``: ``given``, or built from a clean copy of the
    source tree (an in-tree build would write build/ into it)."""
    if given is not None:
        if not given.is_file() or given.suffix != ".whl":
            raise MotivnetError(f"--project-wheel {given} is not a wheel file")
        return Path(shutil.copy2(given, dest))
    src = project_source()
    if src is None:
        raise MotivnetError("this install has no source tree to build the project's wheel "
                            "from: give --project-wheel FILE.whl")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns(
            ".git", ".venv", "out", "build", "dist", "*.egg-info", "__pycache__",
            ".pytest_cache", ".ruff_cache"))
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest)]
        try:
            import setuptools

            if int(setuptools.__version__.split(".")[0]) >= 77:
                cmd.append("--no-build-isolation")
        except ImportError:
            pass
        run_pip(cmd + [str(copy)], "building the project's wheel")
    wheels = sorted(dest.glob("motivnet_edge-*.whl"))
    if not wheels:
        raise MotivnetError(f"building the project's wheel from {src} made no wheel")
    return wheels[-1]


def run_pip(cmd: list[str], what: str) -> None:
    """pip run as ``cmd``; its last lines of output in the error when it fails."""
    log.info("%s: %s", what, " ".join(cmd[3:6]) + " ...")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise MotivnetError(f"{what} failed (pip exit {done.returncode}):\n{tail}")


def download_wheels(dest: Path, project_wheel: Path, extra: str, platform: str,
                    python: str, glibc: str) -> None:
    """Every wheel the device install needs, for ``platform`` and CPython ``python``."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
           "--python-version", python, "--implementation", "cp",
           "--abi", f"cp{python.replace('.', '')}", "-d", str(dest)]
    for tag in platform_tags(platform, glibc):
        cmd += ["--platform", tag]
    requirement = f"{project_wheel}[{extra}]" if extra else str(project_wheel)
    run_pip(cmd + [requirement], f"downloading the {platform} wheels for Python {python}")


def copy_model(folder: Path, choice: Choice, dest: Path) -> dict:
    """The chosen artifact and its companions, a manifest of only those files, the card."""
    path = folder / choice.artifact
    meta = read_metadata(path)
    dest.mkdir(parents=True)
    files = artifact_files(path)
    for f in files:
        shutil.copy2(f, dest / f.name)
    manifest = Manifest.find(folder)
    if manifest is not None:
        manifest.only(f.name for f in files).write(dest)
    card = folder / "MODEL.md"
    if card.is_file():
        shutil.copy2(card, dest / card.name)
    return meta


def write_sums(root: Path, info: dict) -> None:
    """SHA256SUMS (every file but itself and the manifest) and manifest.json (every file but
    itself, with bytes)."""
    entries = file_list(root, skip={SUMS, BUNDLE_MANIFEST})
    (root / SUMS).write_text("".join(f"{e['sha256']}  {e['path']}\n" for e in entries))
    Manifest(file_list(root, skip={BUNDLE_MANIFEST}), info).write(root)


def make_bundle(args: argparse.Namespace) -> tuple[Path, str]:
    """The bundle written to ``args.out``, and the name of the folder inside it."""
    folder = args.artifacts if args.artifacts is not None else default_model()
    choice = pick_artifact(args.target, folder)
    extra = ENGINES[choice.engine].extra
    missing = PROFILES[args.target].vendor_wheel(args.platform)
    if missing:
        extra = ""  # the engine's wheel comes from its vendor; the rest from the bundle
    version = importlib_metadata.version("motivnet-edge")
    name = f"motivnet-edge-{version}-{args.target}-{args.platform}"
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        root = Path(tmp) / name
        meta = copy_model(folder, choice, root / "model")
        wheels = root / "wheels"
        wheels.mkdir()
        project_wheel = build_project_wheel(wheels, args.project_wheel)
        if args.wheels:
            download_wheels(wheels, project_wheel, extra, args.platform, args.python,
                            args.glibc)
        info = {"schema": 1, "version": version, "target": args.target,
                "platform": args.platform, "os": args.os, "python": args.python,
                "glibc": args.glibc,
                "extra": extra, "artifact": choice.artifact, "engine": choice.engine,
                "device": choice.device_name, "labels": meta["labels"],
                "precision": meta["precision"],
                "wheels": "all" if args.wheels else "own",
                "not_in_bundle": [missing.what] if missing else []}
        (root / BUNDLE_ENV).write_text("".join(
            f"{k.upper()}={info[k]}\n" for k in ("version", "target", "platform", "os",
                                                 "extra", "artifact", "wheels"))
            + f"PYTHON_VERSION={info['python']}\n"
            + f"LOCAL_PACKAGE={missing.package if missing else ''}\n")
        (root / "config.yaml").write_text(config_template(args.target, choice))
        (root / "motivnet-edge.service").write_text(unit_template())
        for src, rel in DEVICE_FILES:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
        (root / "README").write_text(bundle_readme(info, missing))
        write_sums(root, info)
        with atomic_path(args.out, suffix=".tar.gz") as out_tmp:
            with tarfile.open(out_tmp, "w:gz") as tar:
                tar.add(root, arcname=name, filter=_normalise)
    return args.out, name


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge bundle``."""
    p.add_argument("--target", required=True, choices=list(PROFILES),
                   help="the device's target profile")
    p.add_argument("--platform", required=True, choices=PLATFORMS, help="the device's CPU")
    p.add_argument("--artifacts", type=Path, help="a compress output folder (default: the "
                   "emotion model shipped in the package)")
    p.add_argument("--os", choices=list(DEVICE_OS), help="the device's OS, which sets its "
                   "Python and glibc: " + "; ".join(
                       f"{k}: {v.description}, Python {v.python}, glibc {v.glibc}"
                       for k, v in DEVICE_OS.items())
                   + " (default: the target's: " + ", ".join(
                       f"{p.name} {p.os}" for p in PROFILES.values()) + ")")
    p.add_argument("--python", help="the device's Python, over the OS's (3.13, ...)")
    p.add_argument("--glibc", help="the device's glibc, over the OS's (2.41, ...): wheels "
                   "tagged for any older manylinux are taken")
    p.add_argument("--wheels", action="store_true",
                   help="bundle every wheel the device needs, so it installs with no network")
    p.add_argument("--project-wheel", type=Path,
                   help="this project's wheel (default: built from the source tree)")
    p.add_argument("--out", type=Path, required=True, help="the bundle, FILE.tar.gz")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge bundle``: the bundle written atomically, its path and size printed."""
    if not args.out.name.endswith(".tar.gz"):
        raise MotivnetError(f"--out {args.out}: the bundle is a .tar.gz file")
    if args.out.is_dir():
        raise MotivnetError(f"--out {args.out} is a folder")
    if args.artifacts is not None and not args.artifacts.is_dir():
        raise MotivnetError(f"--artifacts {args.artifacts} is not a folder")
    args.os = args.os or PROFILES[args.target].os
    args.python = args.python or DEVICE_OS[args.os].python
    args.glibc = args.glibc or DEVICE_OS[args.os].glibc
    if not all(v.isdigit() for v in args.python.split(".")) or args.python.count(".") != 1:
        raise MotivnetError(f"--python {args.python!r}: expected a version such as 3.11")
    platform_tags(args.platform, args.glibc)  # checks --glibc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out, name = make_bundle(args)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): on the device, "
          f"tar -xzf {out.name} && sudo sh {name}/install.sh")
    return 0
