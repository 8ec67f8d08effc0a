"""``motivnet-edge cameras``: what this box can open, each as the config line to paste.

Lists the V4L2 devices (USB cameras) with their pixel formats and sizes, the libcamera cameras
(Raspberry Pi camera modules) with their sensor modes, and whether GStreamer pipelines can be
read and through which binding. ``--snapshot NAME|SOURCE FILE`` grabs one frame through the
same reader the daemon uses and writes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from motivnet_edge.edge import gstreamer, v4l2
from motivnet_edge.edge.config import SOURCE_KINDS, CameraConfig, load_config
from motivnet_edge.edge.readers import CannotOpen, check_source, open_reader
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path

# the mode a config line suggests: MJPG first (30 fps at 720p over a Pi's USB), the largest
# size up to 1280x720
PREFERRED_FORMATS = ("MJPG", "YUYV")
LARGEST = (1280, 720)


def config_line(**fields) -> str:
    """One camera entry as a YAML flow mapping, ready to paste under ``cameras:``."""
    def value(v):
        return f'"{v}"' if isinstance(v, str) and any(c in v for c in ":!,{}#") else str(v)
    return "- {" + ", ".join(f"{k}: {value(v)}" for k, v in fields.items()) + "}"


def suggested_mode(device: v4l2.Device) -> tuple[str, int, int] | None:
    """(format, width, height) to ask of a V4L2 device, or None when it lists no sizes."""
    rank = {f: i for i, f in enumerate(PREFERRED_FORMATS)}
    for fmt in sorted(device.formats, key=lambda f: rank.get(f.fourcc, len(rank))):
        fitting = [s for s in fmt.sizes if s[0] <= LARGEST[0] and s[1] <= LARGEST[1]]
        if fitting:
            w, h = max(fitting, key=lambda s: s[0] * s[1])
            return fmt.fourcc, w, h
    return None


def v4l2_lines() -> tuple[list[str], int]:
    """The V4L2 section, and how many cameras it offers."""
    found, problems = v4l2.devices()
    lines = ["V4L2 devices (USB cameras):"]
    for d in found:
        lines.append(f"  {d.path}: {d.card} ({d.driver}, {d.bus})")
        for f in d.formats:
            sizes = " ".join(f"{w}x{h}" for w, h in f.sizes) or "any size (stepwise)"
            lines.append(f"    {f.fourcc} ({f.description}): {sizes}")
        name = Path(d.path).name
        if d.raw_only:
            lines.append("    raw Bayer only: a camera module's node, read it as libcamera")
            continue
        mode = suggested_mode(d)
        extra = dict(width=mode[1], height=mode[2], format=mode[0]) if mode else {}
        lines.append("    " + config_line(name=name, kind="v4l2", source=d.path, **extra))
    if not found:
        lines.append("  none found (no /dev/video* that captures video)")
    lines += [f"  {p}" for p in problems]
    return lines, sum(not d.raw_only for d in found)


def libcamera_lines() -> tuple[list[str], int]:
    """The libcamera section, and how many cameras it offers."""
    from motivnet_edge.edge import picamera

    lines = ["libcamera cameras (Raspberry Pi camera modules):"]
    try:
        found = picamera.cameras()
        cls = picamera.picamera2_class()
    except MotivnetError as exc:
        return lines + [f"  none: {exc}"], 0
    except Exception as exc:  # libcamera's own errors: no camera stack on this kernel
        return lines + [f"  none: libcamera could not list cameras ({exc})"], 0
    if not found:
        return lines + ["  none found (`rpicam-hello --list-cameras` says why)"], 0
    for n, info in enumerate(found):
        lines.append(f"  {n}: {info.get('Model', '?')} ({info.get('Id', '')})")
        size = None
        try:
            cam = cls(n)
            try:
                for mode in cam.sensor_modes:
                    lines.append(f"    {mode['size'][0]}x{mode['size'][1]} up to "
                                 f"{mode.get('fps', 0):.0f} fps ({mode.get('format', '')})")
                    size = size or mode["size"]
            finally:
                cam.close()
        except Exception as exc:  # busy: the daemon may hold it
            lines.append(f"    modes not read: {exc}")
        extra = dict(width=size[0], height=size[1]) if size else {}
        lines.append("    " + config_line(name=f"csi{n}", kind="libcamera", source=n, **extra))
    return lines, len(found)


def gstreamer_lines() -> list[str]:
    state = gstreamer.state()
    lines = [f"GStreamer pipelines: {state}"]
    if not state.startswith("no GStreamer"):
        lines.append("    " + config_line(name="gst0", source="videotestsrc is-live=true ! "
                                          "videoconvert ! appsink"))
    return lines


def snapshot_camera(name_or_source: str, config: Path | None, kind: str) -> CameraConfig:
    """The config's camera of that name, else a camera entry for the source string."""
    if config is not None:
        cfg = load_config(config)
        for cam in cfg.cameras:
            if cam.name == name_or_source:
                return cam
    source: str | int = int(name_or_source) if name_or_source.isdigit() else name_or_source
    return CameraConfig(name="snapshot", source=source, kind=kind, loop=False)


def snapshot(cam: CameraConfig, out: Path) -> str:
    """One frame of ``cam`` through the daemon's reader, written to ``out``."""
    how = check_source(cam)
    if not cv2.haveImageWriter(str(out)):
        raise MotivnetError(f"{out}: OpenCV writes no {out.suffix or 'extensionless'} images "
                            f"(use .jpg or .png)")
    try:
        reader = open_reader(cam)
    except CannotOpen as exc:
        raise MotivnetError(f"camera {cam.name}: {exc}") from exc
    frame = next(reader.frames, None)
    reader.close()
    if frame is None:
        raise MotivnetError(f"camera {cam.name} ({how}) gave no frame: "
                            f"{reader.stopped_because or 'it stopped at once'}")
    ok, data = cv2.imencode(out.suffix, frame)
    if not ok:
        raise MotivnetError(f"{out}: the frame could not be encoded as {out.suffix}")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data.tobytes())
    return f"wrote {out} ({frame.shape[1]}x{frame.shape[0]}) from {cam.name}: {reader.mode}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge cameras``."""
    p.add_argument("--snapshot", nargs=2, metavar=("NAME|SOURCE", "FILE"),
                   help="grab one frame of a camera of --config, or of a source (an index, "
                   "/dev/video*, libcamera:N, a pipeline, a URL, a file) into FILE (.jpg, .png)")
    p.add_argument("--config", type=Path, help="the daemon's config, for camera names")
    p.add_argument("--kind", default="auto", help="the source's kind when it cannot be told "
                   "from the source (v4l2, libcamera, gstreamer, stream, file)")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge cameras``: the cameras this box can open, or one frame grabbed with
    --snapshot."""
    if args.snapshot:
        if args.kind != "auto" and args.kind not in SOURCE_KINDS:
            raise MotivnetError(f"--kind {args.kind!r} is not auto or one of "
                                f"{', '.join(SOURCE_KINDS)}")
        cam = snapshot_camera(args.snapshot[0], args.config, args.kind)
        print(snapshot(cam, Path(args.snapshot[1])))
        return 0
    (usb, usb_count), (csi, csi_count) = v4l2_lines(), libcamera_lines()
    lines = usb + csi + gstreamer_lines()
    if not usb_count + csi_count:
        lines.append("No camera found on this machine: plug one in, or read a stream "
                     "(rtsp://...), a GStreamer pipeline or a file.")
    print("\n".join(lines))
    return 0
