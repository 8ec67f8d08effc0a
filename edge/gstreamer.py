"""GStreamer pipelines as camera sources, through OpenCV where it was built with GStreamer and
through GStreamer's own Python bindings (PyGObject's ``gi``) everywhere else.

OpenCV's wheels on PyPI are built without GStreamer, so on a device the bindings are the usual
way: Debian, Raspberry Pi OS and JetPack ship them as ``python3-gi`` with
``gir1.2-gstreamer-1.0``; a virtual environment sees them when it is made with
``--system-site-packages`` (the bundle's install.sh does).

A pipeline is given as OpenCV takes it, ending in ``appsink`` (one is added after a
``videoconvert`` when it does not). Frames arrive as BGR: the appsink accepts the packed
formats below and converts them. A live pipeline (a camera) keeps only the newest frame; a
pipeline that is not live (``filesrc ...``) hands over every frame and ends as recorded footage.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from functools import cache

import cv2
import numpy as np

from motivnet_edge.edge.readers import CannotOpen, Reader, capture_frames
from motivnet_edge.targets.errors import MotivnetError

# appsink format -> (bytes per pixel, the OpenCV conversion to BGR, None when it is BGR)
FORMATS = {"BGR": (3, None), "BGRx": (4, cv2.COLOR_BGRA2BGR), "BGRA": (4, cv2.COLOR_BGRA2BGR),
           "RGB": (3, cv2.COLOR_RGB2BGR), "RGBx": (4, cv2.COLOR_RGBA2BGR),
           "RGBA": (4, cv2.COLOR_RGBA2BGR), "GRAY8": (1, cv2.COLOR_GRAY2BGR)}
SINK_CAPS = f"video/x-raw,format={{ {', '.join(FORMATS)} }}"
PACKAGES = "python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base"
_init_lock = threading.Lock()


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV was built with GStreamer (PyPI's wheels are not)."""
    found = re.search(r"GStreamer:\s*(\S+)", cv2.getBuildInformation())
    return bool(found) and found.group(1).upper() == "YES"


@cache
def bindings() -> tuple[object | None, str]:
    """GStreamer's ``Gst`` module through PyGObject, initialised, and its version; or None and
    why it cannot be had."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except ImportError:
        return None, (f"GStreamer's Python bindings (gi) cannot be imported by "
                      f"{sys.executable}: apt install {PACKAGES}, and make the venv with "
                      f"--system-site-packages so that it sees them (the bundle's install.sh "
                      f"does)")
    except ValueError as exc:  # gi without GStreamer's typelib
        return None, f"PyGObject has no GStreamer ({exc}): apt install gir1.2-gstreamer-1.0"
    with _init_lock:
        Gst.init(None)
    return Gst, f"GStreamer {Gst.version_string().split()[-1]} through PyGObject"


def state() -> str:
    """One line: which binding opens pipelines here, or why none can."""
    if opencv_has_gstreamer():
        return "GStreamer through OpenCV (built with it)"
    gst, how = bindings()
    return how if gst is not None else f"no GStreamer: this OpenCV has none, and {how}"


def full_description(description: str) -> str:
    """The pipeline with an appsink at its end: the user's, or one added after videoconvert."""
    last = description.strip().rsplit("!", 1)[-1].split()
    if last and last[0] == "appsink":
        return description.strip()
    return f"{description.strip()} ! videoconvert ! appsink"


def _parse(gst, description: str):
    try:
        return gst.parse_launch(full_description(description))
    except Exception as exc:  # GLib.Error: an element or property that does not exist
        raise MotivnetError(f"GStreamer cannot build the pipeline {description!r}: "
                            f"{getattr(exc, 'message', exc)} (gst-inspect-1.0 lists the elements "
                            f"this machine has)") from exc


def check(description: str) -> str:
    """How the pipeline will be read; a :class:`MotivnetError` when no binding exists here or
    the pipeline names elements or properties this GStreamer does not have."""
    if opencv_has_gstreamer():
        return "gstreamer through OpenCV"
    gst, how = bindings()
    if gst is None:
        raise MotivnetError(f"a GStreamer pipeline, but this OpenCV is built without GStreamer "
                            f"and {how}")
    _parse(gst, description).set_state(gst.State.NULL)
    return f"gstreamer: {how}"


def _appsink(gst, pipeline):
    """The pipeline's appsink element."""
    it = pipeline.iterate_sinks()
    while True:
        result, element = it.next()
        if result != gst.IteratorResult.OK:
            raise MotivnetError("the pipeline has no appsink")
        if element.get_factory().get_name() == "appsink":
            return element


def _bus_error(gst, pipeline) -> str:
    msg = pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
    if msg is None:
        return ""
    err, debug = msg.parse_error()
    return f"{err.message} ({(debug or '').splitlines()[0][:160] if debug else 'no detail'})"


def to_bgr(gst, sample) -> np.ndarray:
    """A BGR picture from an appsink sample of one of :data:`FORMATS` (rows may be padded)."""
    s = sample.get_caps().get_structure(0)
    fmt, width, height = s.get_value("format"), s.get_value("width"), s.get_value("height")
    channels, code = FORMATS[fmt]
    buf = sample.get_buffer()
    ok, info = buf.map(gst.MapFlags.READ)
    if not ok:
        raise CannotOpen("a GStreamer buffer could not be mapped")
    try:
        data = np.frombuffer(info.data, np.uint8)
        stride = data.size // height
        rows = data[:stride * height].reshape(height, stride)[:, :width * channels]
        image = rows.reshape(height, width, channels)
        return cv2.cvtColor(image, code) if code is not None else image.copy()
    finally:
        buf.unmap(info)


def _frames(gst, pipeline, sink, timeout: float, reader: Reader) -> Iterator[np.ndarray]:
    try:
        while True:
            sample = sink.emit("try-pull-sample", int(timeout * gst.SECOND))
            if sample is None:
                error = _bus_error(gst, pipeline)
                reader.stopped_because = (f"GStreamer error: {error}" if error else
                                          "end of stream" if sink.get_property("eos") else
                                          f"no frame for {timeout:g} s")
                return
            yield to_bgr(gst, sample)
    finally:
        pipeline.set_state(gst.State.NULL)


def open_pipeline(description: str, timeout: float) -> Reader:
    """The pipeline playing, its frames as BGR; :class:`CannotOpen` with GStreamer's reason."""
    if opencv_has_gstreamer():
        cap = cv2.VideoCapture(description, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            cap.release()
            raise CannotOpen(f"OpenCV could not start the pipeline {description!r}")
        return Reader(capture_frames(cap), False, f"gstreamer through OpenCV: {description}")
    gst, how = bindings()
    if gst is None:
        raise CannotOpen(how)
    try:
        pipeline = _parse(gst, description)
        sink = _appsink(gst, pipeline)
    except MotivnetError as exc:
        raise CannotOpen(str(exc)) from exc
    if sink.get_property("caps") is None:
        sink.set_property("caps", gst.Caps.from_string(SINK_CAPS))
    sink.set_property("max-buffers", 1)
    sink.set_property("sync", False)
    failed = gst.StateChangeReturn.FAILURE
    paused = pipeline.set_state(gst.State.PAUSED)
    live = paused == gst.StateChangeReturn.NO_PREROLL  # a live source does not preroll
    if paused == failed or pipeline.set_state(gst.State.PLAYING) == failed:
        error = _bus_error(gst, pipeline)
        pipeline.set_state(gst.State.NULL)
        raise CannotOpen(f"GStreamer could not start {description!r}: {error or 'no reason given'}")
    sink.set_property("drop", live)  # a camera: the newest frame; footage: every frame
    reader = Reader(iter(()), not live, f"gstreamer ({how}, {'live' if live else 'not live'}): "
                    f"{full_description(description)}")
    reader.frames = _frames(gst, pipeline, sink, timeout, reader)
    return reader
