"""What the V4L2 video devices of this machine offer, read with the kernel's own ioctls (no
v4l2-ctl needed): driver and card, and per capture device its pixel formats with their
discrete frame sizes.

A camera module's node on a Raspberry Pi 5 (and a Pi 4 on the libcamera stack) lists only raw
Bayer formats: OpenCV cannot turn those into pictures, so such a node is reported as one for the
``libcamera`` kind instead.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

# ioctl numbers: _IOC(direction, 'V', number, size) as linux/videodev2.h defines them
_READ, _WRITE = 2, 1


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | number


CAPABILITY = struct.Struct("16s32s32sIII12x")  # struct v4l2_capability
FMTDESC = struct.Struct("III32sII12x")  # struct v4l2_fmtdesc
FRMSIZE = struct.Struct("III6I8x")  # struct v4l2_frmsizeenum
VIDIOC_QUERYCAP = _ioc(_READ, 0, CAPABILITY.size)
VIDIOC_ENUM_FMT = _ioc(_READ | _WRITE, 2, FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _ioc(_READ | _WRITE, 74, FRMSIZE.size)
CAP_VIDEO_CAPTURE = 0x1
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
FRMSIZE_TYPE_DISCRETE = 1


@dataclass
class Format:
    fourcc: str
    description: str
    sizes: list[tuple[int, int]] = field(default_factory=list)  # empty: stepwise, any size

    @property
    def raw_bayer(self) -> bool:
        return "bayer" in self.description.lower()


@dataclass
class Device:
    path: str
    driver: str
    card: str
    bus: str
    formats: list[Format]

    @property
    def raw_only(self) -> bool:
        """Only raw Bayer formats: a camera module's node, for libcamera to drive."""
        return bool(self.formats) and all(f.raw_bayer for f in self.formats)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


def _enum(fd: int, request: int, make) -> list[tuple]:
    """Every entry of an enumerating ioctl, ``make(index)`` packing its request, from index 0
    until the driver answers EINVAL."""
    out = []
    for index in range(256):
        buf = bytearray(make(index))
        try:
            fcntl.ioctl(fd, request, buf)
        except OSError:
            break
        out.append(buf)
    return out


def _formats(fd: int) -> list[Format]:
    formats = []
    for buf in _enum(fd, VIDIOC_ENUM_FMT,
                     lambda i: FMTDESC.pack(i, BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0)):
        _, _, _, desc, pixfmt, _ = FMTDESC.unpack(bytes(buf))
        fmt = Format(fourcc(pixfmt), _text(desc))
        for size in _enum(fd, VIDIOC_ENUM_FRAMESIZES,
                          lambda i, p=pixfmt: FRMSIZE.pack(i, p, 0, 0, 0, 0, 0, 0, 0)):
            entry = FRMSIZE.unpack(bytes(size))
            if entry[2] == FRMSIZE_TYPE_DISCRETE:
                fmt.sizes.append((entry[3], entry[4]))
        formats.append(fmt)
    return formats


def query(path: str) -> Device | None:
    """The device at ``path`` if it captures video (metadata nodes are left out)."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        buf = bytearray(CAPABILITY.size)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        driver, card, bus, _, caps, device_caps = CAPABILITY.unpack(bytes(buf))
        if caps & CAP_DEVICE_CAPS:
            caps = device_caps
        if not caps & CAP_VIDEO_CAPTURE:
            return None
        return Device(path, _text(driver), _text(card), _text(bus), _formats(fd))
    finally:
        os.close(fd)


def devices() -> tuple[list[Device], list[str]]:
    """The capture devices under /dev, and one line per node that could not be read."""
    found, problems = [], []
    nodes = sorted(Path("/dev").glob("video*"), key=lambda p: (len(p.name), p.name))
    for node in nodes:
        try:
            device = query(str(node))
        except OSError as exc:
            problems.append(f"{node}: {exc.strerror or exc} (the video group may read it)")
            continue
        if device is not None:
            found.append(device)
    return found, problems
