"""Device roots: a Debian root of this CPU or another (arm64 trixie, the base of Raspberry Pi OS
13, or bookworm, of Raspberry Pi OS 12) made by mmdebstrap or debootstrap, run here natively or
under qemu-user through binfmt_misc.

The bundle tests install into such a root and run the daemon there, ``bench --python`` runs a
table inside one, so the device install is proven on ARM without a board (speed there means
nothing: it is emulated), and the container images are built from one (:mod:`.image`). Needs
root and Debian's ``qemu-user-static`` and ``mmdebstrap`` (or ``debootstrap``, four times
slower). The root is built once and cached under the cache folder, keyed by its inputs; each use
works on a fresh copy. ``/proc`` is mounted inside and ``/sys`` is not: ONNX Runtime segfaults
under qemu when ``/sys`` is there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import cache_dir

log = logging.getLogger(__name__)

# machine name -> (Debian architecture, qemu name)
ARCHES = {"aarch64": ("arm64", "aarch64"), "x86_64": ("amd64", "x86_64")}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
SUITE = "trixie"
# Python and GStreamer's own Python bindings, as Raspberry Pi OS has them: the installed daemon
# reads a GStreamer source there through the system's python3-gi
PACKAGES = ("python3", "python3-venv", "python3-gi", "gir1.2-gstreamer-1.0",
            "gir1.2-gst-plugins-base-1.0", "gstreamer1.0-plugins-base")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def qemu_binary(arch: str) -> str | None:
    return shutil.which(f"qemu-{ARCHES[arch][1]}-static")


def missing(arch: str = "aarch64") -> str | None:
    """Why an emulated ``arch`` root cannot be had here, or None."""
    if platform.machine() == arch:
        return f"this machine is {arch} already: nothing to emulate"
    return root_missing(arch)


def root_missing(arch: str) -> str | None:
    """Why a Debian root for ``arch`` cannot be built and entered here, or None: natively when
    it is this machine's own architecture, else under qemu-user through binfmt_misc."""
    if os.geteuid() != 0:
        return "needs root (mmdebstrap, chroot, mounts)"
    if not shutil.which("chroot"):
        return "no chroot: apt-get install coreutils"
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
        return "no mmdebstrap or debootstrap: apt-get install mmdebstrap"
    if platform.machine() == arch:
        return None
    if not qemu_binary(arch):
        return f"no qemu-{ARCHES[arch][1]}-static: apt-get install qemu-user-static"
    try:
        ensure_binfmt(arch)
    except MotivnetError as exc:
        return str(exc)
    return None


def _binfmt_line(arch: str) -> str:
    """The registration line for qemu-user with the F flag (the kernel opens the interpreter
    at registration, so it works inside a chroot that has no copy of qemu). Magic and mask
    from the qemu package's own binfmt.d entry."""
    conf = Path(f"/usr/lib/binfmt.d/qemu-{ARCHES[arch][1]}.conf")
    if not conf.is_file():
        raise MotivnetError(f"no {conf}: apt-get install qemu-user-static")
    fields = conf.read_text().strip().split(":")
    magic, mask = fields[4], fields[5]
    return f":motivnet-{arch}:M::{magic}:{mask}:{qemu_binary(arch)}:F"


def ensure_binfmt(arch: str) -> None:
    """binfmt_misc mounted, and ``arch`` binaries run by qemu with the F flag."""
    if not (BINFMT / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise MotivnetError(f"binfmt_misc cannot be mounted: {done.stderr.strip()}")
    for entry in BINFMT.glob(f"*{ARCHES[arch][1]}*"):
        text = entry.read_text()
        if "enabled" in text and re.search(r"^flags:.*F", text, re.M):
            return
    try:
        (BINFMT / "register").write_text(_binfmt_line(arch))
    except OSError as exc:
        raise MotivnetError(f"cannot register qemu for {arch} in binfmt_misc: {exc}") from exc


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses."""
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in re.findall(r"(?:^deb\s+|URIs:\s*)(\S+)", text, re.M):
            if "debian" in url and "security" not in url:
                return url.rstrip("/")
    return DEFAULT_MIRROR


def _run(cmd: list[str], what: str, timeout: float = 1800) -> None:
    log.info("%s", what)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise MotivnetError(f"{what} failed (exit {done.returncode}):\n{tail}")


def root_path(arch: str = "aarch64", suite: str = SUITE, packages: tuple[str, ...] = PACKAGES,
              mirror: str | None = None) -> Path:
    """Where the cached root of these inputs lives (``mirror``: this machine's by default)."""
    mirror = mirror or apt_mirror()
    key = hashlib.sha256(repr((arch, suite, packages, mirror)).encode()).hexdigest()[:16]
    return cache_dir() / "roots" / f"{suite}-{ARCHES[arch][0]}-{key}"


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """An exclusive lock on ``lock`` for the duration, waited for when another process (or
    thread) holds it: two builds of one root never run at once."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for the build of %s to finish", lock.stem)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_root(arch: str = "aarch64", suite: str = SUITE,
                packages: tuple[str, ...] = PACKAGES) -> Path:
    """A Debian ``suite`` root for ``arch`` with ``packages``, built once and cached; a build
    already under way elsewhere is waited for, not repeated."""
    why = root_missing(arch)
    if why:
        raise MotivnetError(f"no {arch} root: {why}")
    mirror = apt_mirror()
    root = root_path(arch, suite, packages, mirror)
    if (root / ".complete").is_file():
        return root
    with exclusive(root.with_name(root.name + ".lock")):
        if (root / ".complete").is_file():
            return root
        tmp = root.with_name(root.name + ".tmp")
        remove_root(tmp)
        bootstrap(arch, suite, packages, mirror, tmp)
        (tmp / ".complete").write_text(f"{arch} {suite} {' '.join(packages)} {mirror}\n")
        remove_root(root)
        tmp.rename(root)
    return root


def bootstrap(arch: str, suite: str, packages: tuple[str, ...], mirror: str, dest: Path) -> None:
    """A Debian root at ``dest``. mmdebstrap resolves and downloads with this host's apt and
    runs only the packages' scripts under qemu (trixie with GStreamer: 6 minutes on 2 cores);
    debootstrap's second stage runs its whole resolver under qemu (the same root: 25 minutes),
    so it is the fallback."""
    deb, qemu = ARCHES[arch]
    if shutil.which("mmdebstrap"):
        _run(["mmdebstrap", "--mode=root", f"--architectures={deb}", "--variant=minbase",
              f"--include={','.join(packages)}", suite, str(dest), mirror],
             f"mmdebstrap {suite} {deb} from {mirror}, scripts under qemu-{qemu}")
        return
    _run(["debootstrap", f"--arch={deb}", "--foreign", "--variant=minbase",
          f"--include={','.join(packages)}", suite, str(dest), mirror],
         f"debootstrap {suite} {deb}, first stage, from {mirror}")
    _run(["chroot", str(dest), "/debootstrap/debootstrap", "--second-stage"],
         f"debootstrap second stage under qemu-{qemu} (about 25 minutes)")


def copy_root(root: Path, dest: Path) -> Path:
    """A fresh working copy of a cached root."""
    _run(["cp", "-a", "--reflink=auto", str(root), str(dest)], f"copy {root.name}")
    return dest


@contextlib.contextmanager
def proc_mounted(root: Path) -> Iterator[Path]:
    """``/proc`` mounted inside ``root`` (and not ``/sys``) for the duration."""
    target = root / "proc"
    target.mkdir(exist_ok=True)
    _run(["mount", "-t", "proc", "proc", str(target)], f"mount /proc in {root}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def chroot_cmd(root: Path, *cmd: str) -> list[str]:
    """A command line that runs ``cmd`` inside ``root`` with a plain environment."""
    return ["chroot", str(root), "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root", "LANG=C.UTF-8", *cmd]


def mounts_under(root: Path) -> list[Path]:
    """The mount points at or below ``root``, deepest first (from /proc/self/mounts, whose
    octal escapes for spaces and the like are undone)."""
    base = os.path.realpath(root)
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as table:
        for line in table:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_root(root: Path) -> None:
    """Delete a root (a working copy, or a half-built one that mmdebstrap left when it was
    stopped with /proc, /sys, /dev/pts and /dev/shm still mounted inside), after unmounting
    whatever is mounted inside it: deleting through a mount would delete the host's files."""
    if not root.exists():
        return
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
    left = mounts_under(root)
    if left:
        raise MotivnetError(f"{left[0]} is still mounted: not deleting {root}")
    shutil.rmtree(root, ignore_errors=True)
