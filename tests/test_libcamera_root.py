"""The libcamera reader as far as a machine without a camera allows: real picamera2 (0.3.38,
PyPI) over Debian trixie's real libcamera (python3-libcamera 0.4) in a Debian trixie root of
this machine's own architecture. libcamera's camera manager starts and finds no camera, and the
project's reader says so: ``motivnet-edge cameras`` lists none, and the daemon with a
``libcamera:0`` camera stops at start with exit 2 and the reason (not a reopen loop).

One piece is not real: Raspberry Pi's ``pykms`` (python3-kms++, the DRM preview's binding) is
in no Debian or PyPI package, and picamera2 imports it for its display preview; a module of
placeholder names stands in for it. Nothing on the capture path touches it. No frame is read:
that needs a camera.
"""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from motivnet_edge.edge.packaging import roots as emulated

ARCH = platform.machine()
PACKAGES = ("python3", "python3-pip", "python3-setuptools", "python3-dev", "gcc",
            "python3-libcamera", "python3-numpy", "python3-pil", "python3-av", "python3-prctl",
            "python3-jsonschema", "python3-libarchive-c", "python3-tqdm", "python3-yaml")
pytestmark = [pytest.mark.slow, pytest.mark.emulated, pytest.mark.root(ARCH, "trixie", PACKAGES)]
# picamera2 and what it imports that Debian lacks; the device runtime beside it
WHEELS = ("picamera2==0.3.38", "simplejpeg", "videodev2", "piexif", "openexr",
          "opencv-python-headless<5", "paho-mqtt")
PYKMS = '''"""Placeholder for Raspberry Pi's pykms (python3-kms++): only picamera2's DRM
preview uses it, and no package here has it."""


class _Names(type):
    def __getattr__(cls, name):
        return name


class PixelFormat(metaclass=_Names):
    pass
'''


def download(dest: Path) -> None:
    tags = []
    for tag in ("manylinux_2_28", "manylinux2014", "manylinux_2_17"):
        tags += ["--platform", f"{tag}_{ARCH}"]
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
    subprocess.run([*base, "--only-binary=:all:", "--python-version", "3.13",
                    "--implementation", "cp", "--abi", "cp313", *tags, *WHEELS], check=True,
                   capture_output=True, timeout=600)
    subprocess.run([*base, "--no-binary=:all:", "pidng"], check=True, capture_output=True,
                   timeout=600)  # sdist only: built in the root


def in_root(root: Path, *cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(emulated.chroot_cmd(root, "env", "PYTHONPATH=/tmp/shim", *cmd),
                          capture_output=True, text=True, timeout=timeout)


def test_picamera2_over_real_libcamera_finds_no_camera_and_the_daemon_says_so(
        tmp_path, project_wheel):
    why = emulated.root_missing(ARCH)
    if why:
        pytest.skip(f"no {ARCH} Debian root: {why}")
    base = emulated.cached_root(ARCH, "trixie", PACKAGES)
    root = emulated.copy_root(base, tmp_path / "root")
    try:
        with emulated.proc_mounted(root):
            wheels = root / "tmp" / "w"
            download(wheels)
            (wheels / project_wheel.name).write_bytes(project_wheel.read_bytes())
            (root / "tmp" / "shim").mkdir()
            (root / "tmp" / "shim" / "pykms.py").write_text(PYKMS)
            install = in_root(root, "sh", "-c", "python3 -m pip install -q "
                              "--break-system-packages --no-deps --no-index "
                              "--no-build-isolation /tmp/w/*")
            assert install.returncode == 0, install.stderr[-3000:]

            probe = in_root(root, "python3", "-c", "import json, libcamera; from picamera2 "
                            "import Picamera2; print(json.dumps(Picamera2.global_camera_info()))")
            assert probe.returncode == 0, probe.stderr[-3000:]
            assert json.loads(probe.stdout.splitlines()[-1]) == []
            assert "libcamera v0." in probe.stderr  # its camera manager really started

            listed = in_root(root, "python3", "-m", "motivnet_edge.cli", "cameras")
            assert listed.returncode == 0, listed.stderr[-3000:]
            section = listed.stdout.split("libcamera cameras")[1].split("GStreamer")[0]
            assert "none found" in section and "cannot be imported" not in section

            (root / "tmp" / "c.yaml").write_text(
                "cameras:\n  - {name: csi, source: 'libcamera:0'}\nmqtt: {port: 1}\n")
            run = in_root(root, "python3", "-m", "motivnet_edge.cli", "run", "--config",
                          "/tmp/c.yaml", timeout=120)
            assert run.returncode == 2, run.stderr[-3000:]
            assert "cameras[0] (csi): no libcamera camera found" in run.stderr
            snap = in_root(root, "python3", "-m", "motivnet_edge.cli", "cameras",
                           "--snapshot", "libcamera:imx708", "/tmp/x.jpg", timeout=120)
            assert snap.returncode == 2 and "no libcamera camera found" in snap.stderr
    finally:
        emulated.remove_root(root)
