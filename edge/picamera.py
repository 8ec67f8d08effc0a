"""Raspberry Pi camera modules (CSI) through libcamera's picamera2, as camera sources.

On a Pi 5, and a Pi 4 on the libcamera stack, the module's ``/dev/video*`` nodes give raw Bayer
data that OpenCV cannot turn into pictures: libcamera runs the ISP. picamera2 is Raspberry Pi
OS's ``python3-picamera2`` (PyPI's ``picamera2`` needs the system's libcamera bindings all the
same); the daemon's venv sees it when made with ``--system-site-packages`` (the rpi bundle's
install.sh does). A camera is chosen by number (``libcamera:0``, or ``kind: libcamera`` with
``source: 0``) or by sensor model (``libcamera:imx708``). Frames are asked as ``RGB888``, which
libcamera lays out as B, G, R bytes: OpenCV's BGR.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator

import numpy as np

from motivnet_edge.edge.config import LIBCAMERA_PREFIX, CameraConfig
from motivnet_edge.edge.readers import CannotOpen, Reader
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)

MISSING = ("picamera2 cannot be imported: on Raspberry Pi OS apt install python3-picamera2, and "
           "make the venv with --system-site-packages so that it sees it (the rpi bundle's "
           "install.sh does; `pip install picamera2` also needs the system's libcamera "
           "bindings, python3-libcamera)")


def picamera2_class():
    """picamera2's ``Picamera2``, or a :class:`MotivnetError` naming the package."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise MotivnetError(f"{MISSING} ({exc})") from exc
    return Picamera2


def cameras() -> list[dict]:
    """libcamera's cameras as picamera2 lists them (Model, Location, Id, Num, ...)."""
    return list(picamera2_class().global_camera_info())


def wanted(cam: CameraConfig) -> str:
    source = str(cam.source)
    return source[len(LIBCAMERA_PREFIX):] if source.startswith(LIBCAMERA_PREFIX) else source


def camera_number(cam: CameraConfig, found: list[dict]) -> int:
    """The libcamera camera the entry names: by number, or the first of a sensor model."""
    want = wanted(cam)
    listed = ", ".join(f"{i}: {c.get('Model', '?')}" for i, c in enumerate(found)) or "none"
    if not found:
        raise MotivnetError("no libcamera camera found (is the ribbon cable seated and the "
                            "camera enabled? `rpicam-hello --list-cameras` lists them)")
    if want.isdigit():
        if int(want) >= len(found):
            raise MotivnetError(f"libcamera camera {want} does not exist (cameras: {listed})")
        return int(want)
    for i, c in enumerate(found):
        if want.lower() in str(c.get("Model", "")).lower():
            return i
    raise MotivnetError(f"no libcamera camera of model {want!r} (cameras: {listed})")


def check(cam: CameraConfig) -> str:
    found = cameras()
    n = camera_number(cam, found)
    return f"libcamera camera {n} ({found[n].get('Model', '?')}) through picamera2"


def _frames(picam, timeout: float, reader: Reader) -> Iterator[np.ndarray]:
    try:
        while True:
            try:  # a number of seconds: picamera2 raises the futures' TimeoutError
                yield picam.capture_array("main", wait=timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                reader.stopped_because = f"no frame from libcamera for {timeout:g} s"
                return
    finally:
        picam.stop()
        picam.close()


def open_camera(cam: CameraConfig) -> Reader:
    """The camera started with the size and rate asked; frames as BGR."""
    try:
        cls = picamera2_class()
        number = camera_number(cam, list(cls.global_camera_info()))
    except MotivnetError as exc:
        raise CannotOpen(str(exc)) from exc
    try:
        picam = cls(number)
    except (RuntimeError, IndexError) as exc:  # busy: another process holds the camera
        raise CannotOpen(f"libcamera camera {number} cannot be acquired: {exc}") from exc
    main: dict = {"format": "RGB888"}
    if cam.width:
        main["size"] = (cam.width, cam.height)
    controls = {"FrameRate": cam.fps} if cam.fps else {}
    try:
        picam.configure(picam.create_video_configuration(main=main, controls=controls))
        picam.start()
    except Exception as exc:  # libcamera refuses a configuration with its own exceptions
        picam.close()
        raise CannotOpen(f"libcamera camera {number} would not start: {exc}") from exc
    size = picam.stream_configuration("main")["size"]
    reader = Reader(iter(()), False, f"libcamera camera {number}: granted {size[0]}x{size[1]} "
                    f"RGB888" + (f" at {cam.fps:g} fps" if cam.fps else ""))
    reader.frames = _frames(picam, cam.timeout, reader)
    return reader
