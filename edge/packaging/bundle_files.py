"""The files of a bundle besides the model and wheels: names, the config and unit templates, the
README, and the listing with sha256 that ``bundle`` writes and ``verify`` checks.

Templates carry ``@PREFIX@``, ``@CONF_DIR@`` and ``@USER@``, which ``install.sh`` fills in
(``/opt/motivnet-edge``, ``/etc/motivnet-edge``, ``motivnet`` unless its environment says).
"""

from __future__ import annotations

from pathlib import Path

from motivnet_edge.edge.packaging.service import unit_text
from motivnet_edge.targets.files import sha256_file
from motivnet_edge.targets.manifest import MANIFEST
from motivnet_edge.targets.profiles import DEVICE_OS, PROFILES, Choice, VendorWheel

DEVICE = Path(__file__).resolve().parent / "device"
SUMS = "SHA256SUMS"
BUNDLE_MANIFEST = MANIFEST  # the bundle lists its files as a model folder does
BUNDLE_ENV = "bundle.env"
LOCAL_WHEELS = "local-wheels"  # a user's own wheels beside the bundle's (a vendor's build)
# (file shipped in the package, its path inside the bundle)
DEVICE_FILES = [
    (DEVICE / "install.sh", "install.sh"),
    (DEVICE / "firstboot.sh", "firstboot/firstboot.sh"),
    (DEVICE / "motivnet-edge-firstboot.service", "firstboot/motivnet-edge-firstboot.service"),
    (DEVICE / "stage-into-image.sh", "firstboot/stage-into-image.sh"),
]


def file_list(root: Path, skip: set[str]) -> list[dict]:
    """Every file under ``root`` but those named in ``skip`` (relative paths), sorted, with
    sha256 and size."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in skip:
            out.append({"path": rel, "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def unit_template() -> str:
    return unit_text(Path("@CONF_DIR@/config.yaml"), "@USER@",
                     ["@PREFIX@/current/venv/bin/motivnet-edge"])


# the camera a target's boards are sold with, as the bundle's config starts
CAMERA_SOURCE = {
    "rpi": "    source: libcamera:0  # the camera module (python3-picamera2); a USB camera: 0,\n"
           "                         # with width: 1280, height: 720, format: MJPG",
    "jetson": '    source: "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 '
              '! nvvidconv ! video/x-raw,format=BGRx ! appsink"  # CSI camera (python3-gi)',
    "usb": "    source: 0          # V4L2 index or /dev/video*, libcamera:0, RTSP/HTTP URL,\n"
           "                       # GStreamer pipeline, or a file: motivnet-edge cameras",
}


def config_template(target: str, choice: Choice) -> str:
    return f"""\
# motivnet-edge daemon config for target {target}: {PROFILES[target].description}.
# The model runs as {choice.artifact} in {choice.engine} ({choice.device_name}).
# Every key and its default: examples/reference.yaml (installed with the package, under
# motivnet_edge/examples/). install.sh puts this file in place only where none exists, so an
# upgrade keeps your edits.
model:
  artifact: @PREFIX@/current/model   # the bundle's model; a profile picks the file from it
  target: {target}
cameras:
  - name: cam0
{CAMERA_SOURCE[target] if target in CAMERA_SOURCE else CAMERA_SOURCE["usb"]}
    fps: 10            # cap on processed frames per second; 0 = as fast as possible
mqtt:
  host: 127.0.0.1      # or MOTIVNET_MQTT_HOST in @CONF_DIR@/env
  port: 1883
  prefix: motivnet
  home_assistant: false
"""


def bundle_readme(info: dict, missing: VendorWheel | None) -> str:
    name = f"motivnet-edge-{info['version']}-{info['target']}-{info['platform']}"
    wheels = ("every wheel the device needs (Python "
              f"{info['python']}, {info['platform']}, glibc {info['glibc']} or newer): "
              "it installs with no network" if info["wheels"] == "all" else
              "only the project's own wheel: the other packages come from the registry, so "
              "the device needs the network during install")
    text = f"""\
motivnet-edge {info['version']} for target {info['target']} ({info['platform']})
{'=' * 60}
Built for {DEVICE_OS[info['os']].description} (--os {info['os']}):
Python {info['python']}, glibc {info['glibc']} or newer.

Facial-emotion recognition: camera in, faces found, emotions out over MQTT.

What is here
  model/           {info['artifact']} ({info['precision']}, {info['engine']} on
                   {info['device']}), its manifest and its card (MODEL.md)
  wheels/          {wheels}
  config.yaml      the daemon's config for this target (installed where none exists)
  motivnet-edge.service   the systemd unit
  install.sh       verifies this bundle, then installs it (POSIX sh, as root)
  firstboot/       for SD-card and root-file-system images: installs on first boot
  SHA256SUMS, manifest.json   the sha256 of every file

Install (as root, on the device)
  tar -xzf THIS-BUNDLE.tar.gz
  sudo sh {name}/install.sh
  # edit /etc/motivnet-edge/config.yaml (camera, broker), then:
  sudo systemctl restart motivnet-edge

It installs into /opt/motivnet-edge/<version> with a 'current' link, the config into
/etc/motivnet-edge/config.yaml (only where none exists), creates the user 'motivnet' and
enables motivnet-edge.service. Running it again changes nothing; a newer bundle upgrades and
keeps the previous version; 'sh install.sh --rollback' returns to it. A failed install leaves
the running version in place.

Check a bundle before copying it anywhere: motivnet-edge verify THIS-BUNDLE.tar.gz
"""
    if missing:
        text += f"""
Not in this bundle: {missing.what}
  It is not on the public package registry for this platform. {missing.how}.
"""
    text += """
Put it into an image (installed on first boot, with no network)
  sudo sh firstboot/stage-into-image.sh ROOTFS BUNDLE.tar.gz
  pi-gen: call it from a stage's 00-run.sh with "${ROOTFS_DIR}"; rpi-image-gen: from a layer's
  post-build hook with the image's root; a Jetson root file system: on Linux_for_Tegra/rootfs
  before flashing. The oneshot unit motivnet-edge-firstboot.service runs install.sh on first
  boot and disables itself.
"""
    return text
