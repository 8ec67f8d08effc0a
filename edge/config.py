"""The daemon's YAML config: typed sections, unknown keys rejected, errors that name the field.

Secrets never sit in the file or on the command line: the MQTT password comes from
``MOTIVNET_MQTT_PASSWORD`` or from ``mqtt.password_file``. Environment overrides:
``MOTIVNET_MQTT_HOST``, ``MOTIVNET_MQTT_PORT``, ``MOTIVNET_MQTT_USERNAME``, ``MOTIVNET_DEVICE``.
No I/O happens in these classes; :func:`load_config` reads the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from motivnet_edge.edge.shipped import default_model
from motivnet_edge.edge.tracker import TrackerSettings
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    # .onnx, .xml or .tflite made by `motivnet-edge compress`, or its output folder (the target
    # profile picks the file); default: the emotion model shipped in the package
    artifact: str = ""
    target: str = "auto"  # a profile from `motivnet-edge targets`, or auto
    engine: str | None = None  # override the profile's engine
    # engine threads (empty: the engine's own choice). A frame's 1-3 faces are too small a
    # batch to split: one thread costs the least CPU per frame, and with pipeline.overlap the
    # detector and the classifier take a core each (benchmarks/results/detector-engines.md)
    threads: int | None = 1
    cache_dir: str | None = None  # engine caches; default: $CACHE_DIRECTORY (systemd)


@dataclass
class DetectorConfig:
    kind: str = "yunet"  # yunet (boxes and landmarks, shipped) or haar (boxes only)
    model: str | None = None  # another YuNet .onnx than the shipped one
    # where YuNet runs: auto (the classifier's engine where it runs YuNet, else opencv),
    # opencv (OpenCV's DNN module, the reference), onnxruntime or openvino
    engine: str = "auto"
    # detect faces on every N-th frame of a camera; between detections the faces found last
    # are classified again where they were (1: every frame)
    every: int = 1
    # with every above 1: detect at once when a frame differs from the one before by more than
    # this (mean absolute difference of 32x24 grey thumbnails, 0-255: a cut, a fast movement,
    # someone coming in; a face drifting 2 px a frame in 640x480 gives about 2); 0: never
    change_threshold: float = 6.0
    # YuNet's threads in its engine (OpenCV's DNN keeps its own); at 320 a side one thread
    # costs the least CPU (benchmarks/results/detector-engines.md); empty: the engine's choice
    threads: int | None = 1
    score_threshold: float = 0.6
    min_size: int = 32
    max_side: int = 320  # frames are shrunk to this longer side for detection
    scale_factor: float = 1.1  # Haar only: larger is faster and finds fewer faces


# How a camera entry's frames are read (edge/readers.py): a V4L2 device (USB cameras), a
# libcamera camera through picamera2 (Raspberry Pi camera modules), a GStreamer pipeline, a
# network stream, or recorded footage (a video file or a folder of photos).
SOURCE_KINDS = ("v4l2", "libcamera", "gstreamer", "stream", "file")
# where YuNet can run (edge/yunet.py)
DETECTOR_ENGINES = ("auto", "opencv", "onnxruntime", "openvino", "litert")
LIBCAMERA_PREFIX = "libcamera:"


@dataclass
class CameraConfig:
    name: str = "cam0"
    # V4L2 index or /dev/video*, libcamera:N or libcamera:MODEL, GStreamer pipeline (holds
    # "!"), RTSP/HTTP URL, video file, folder of photos
    source: str | int = 0
    kind: str = "auto"  # v4l2, libcamera, gstreamer, stream, file, or auto (from the source)
    # cap on processed frames per second, also the rate asked of a v4l2 or libcamera camera;
    # 0 = as fast as possible, at the camera's own rate
    fps: float = 0.0
    width: int = 0  # frame size asked of a v4l2 or libcamera camera; 0 = the driver's choice
    height: int = 0
    format: str = ""  # v4l2 pixel format as a FOURCC (MJPG, YUYV, ...); "" = the driver's
    timeout: float = 10.0  # stream, GStreamer, libcamera: s to open or wait for a frame, then lost
    loop: bool = False  # replay a video file or folder when it ends
    reopen_backoff: float = 1.0  # first wait before reopening a lost source, doubled up to 30 s
    # when the faces topic is written: every processed frame with faces, on a change of the
    # faces tracked or of their labels, or at most N messages per second (a number)
    faces: str | float = "every"


@dataclass
class PipelineConfig:
    max_faces: int = 8
    # tracking (edge/tracker.py declares the defaults and what each does)
    smoothing: float = TrackerSettings.smoothing
    iou_threshold: float = TrackerSettings.iou_threshold
    track_ttl: float = TrackerSettings.ttl
    publish_images: bool = False  # no image leaves the device unless this is set
    # one annotated frame to <camera>/image on request (Home Assistant's snapshot button,
    # <camera>/snapshot/set); off: no such order is taken and no button offered
    snapshots: bool = False
    # detect faces in the next frame (in a second thread) while this one is classified, when
    # the next frame is already there (edge/frames.py); false: one frame at a time
    overlap: bool = True
    # an artifact aligned on five landmarks, with a detector that gives none (haar): crop a
    # square around the box instead (counted in the stats); refused at start when false
    box_crop_fallback: bool = False
    # a model without valence/arousal outputs: derive them from the class probabilities and
    # published per-class circumplex coordinates (marked va_source: derived; direction only)
    derive_valence_arousal: bool = False


@dataclass
class TlsConfig:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False


@dataclass
class SpoolConfig:
    max_messages: int = 10000
    path: str | None = None  # a file keeps results across restarts; memory only when empty


@dataclass
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "motivnet"
    client_id: str | None = None  # default: prefix-device-cameras, unique per device
    username: str | None = None
    password_file: str | None = None
    keepalive: int = 30
    tls: TlsConfig | None = None
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    stats_interval: float = 10.0
    flush_timeout: float = 5.0  # at exit, seconds to wait for the broker to take what is left
    events: bool = True  # per-track events (new, update, end) on <camera>/events
    home_assistant: bool = False
    discovery_prefix: str = "homeassistant"


@dataclass
class HealthConfig:
    port: int | None = None  # /healthz and /metrics over HTTP on this port; off when null
    bind: str = "127.0.0.1"  # the address it listens on; 0.0.0.0 for every interface
    camera_grace: float = 60.0  # s a camera may go without a frame before /healthz says 503


@dataclass
class Config:
    device: str = ""  # default: the hostname
    # where the daemon keeps state (the disk spool, so seq and undelivered results survive a
    # restart); default: $STATE_DIRECTORY (systemd's StateDirectory=) when set
    state_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    cameras: list[CameraConfig] = field(default_factory=lambda: [CameraConfig()])
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    health: HealthConfig = field(default_factory=HealthConfig)


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise MotivnetError(f"config {where or 'top level'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - names))  # YAML keys may be true, 1 or null
    if unknown:
        raise MotivnetError(f"config {where or 'top level'}: unknown keys {unknown} "
                            f"(known: {sorted(names)})")
    values = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**values)


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            if type(None) in typing.get_args(hint):
                return None
            raise MotivnetError(f"config {where}: may not be null")
        errors = []
        for a in args:
            try:
                return _convert(a, value, where)
            except MotivnetError as exc:
                errors.append(str(exc))
        raise MotivnetError(errors[0])
    if origin is list:
        if not isinstance(value, list):
            raise MotivnetError(f"config {where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise MotivnetError(f"config {where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                hint is int and not float(value).is_integer()):
            raise MotivnetError(f"config {where}: expected {hint.__name__}, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise MotivnetError(f"config {where}: expected a string, got {value!r}")
        if "\x00" in value:
            raise MotivnetError(f"config {where}: {value!r} holds a NUL byte")
        return value
    return value


def _check(cfg: Config) -> None:
    if not cfg.model.artifact:
        cfg.model.artifact = str(default_model())
    if not cfg.cameras:
        raise MotivnetError("config cameras: at least one camera is needed")
    names = [c.name for c in cfg.cameras]
    if len(set(names)) != len(names):
        raise MotivnetError(f"config cameras: names must be unique, got {names}")
    for i, cam in enumerate(cfg.cameras):
        if not cam.name or "/" in cam.name or "+" in cam.name or "#" in cam.name:
            raise MotivnetError(f"config cameras[{i}].name: {cam.name!r} cannot be an MQTT "
                                f"topic level")
        if cam.faces not in ("every", "change") and (
                isinstance(cam.faces, str) or not cam.faces > 0):
            raise MotivnetError(f"config cameras[{i}].faces: {cam.faces!r} is not every, "
                                f"change or a number of messages per second above 0")
        _check_camera(cam, f"cameras[{i}]")
    if cfg.detector.kind not in ("yunet", "haar"):
        raise MotivnetError(f"config detector.kind: {cfg.detector.kind!r} is not yunet or haar")
    if not isinstance(cfg.detector.every, int) or cfg.detector.every < 1:
        raise MotivnetError(f"config detector.every: {cfg.detector.every!r} must be a whole "
                            f"number of frames, at least 1")
    for name, threads in (("model", cfg.model.threads), ("detector", cfg.detector.threads)):
        if threads is not None and threads < 1:
            raise MotivnetError(f"config {name}.threads: {threads} must be at least 1 (or "
                                f"empty: the engine's choice)")
    if not 0.0 <= cfg.detector.change_threshold <= 255.0:
        raise MotivnetError(f"config detector.change_threshold: {cfg.detector.change_threshold}"
                            f" is not a grey-level difference in [0, 255] (0: never)")
    if cfg.detector.engine not in DETECTOR_ENGINES:
        raise MotivnetError(f"config detector.engine: {cfg.detector.engine!r} is not one of "
                            f"{', '.join(DETECTOR_ENGINES)}")
    if not 0.0 <= cfg.pipeline.smoothing < 1.0:
        raise MotivnetError(f"config pipeline.smoothing: {cfg.pipeline.smoothing} must be in "
                            f"[0, 1)")
    if cfg.mqtt.spool.max_messages < 1:
        raise MotivnetError("config mqtt.spool.max_messages: must be at least 1")
    health = cfg.health
    if health.port is not None and not 0 <= health.port < 65536:
        raise MotivnetError(f"config health.port: {health.port} is not a port number "
                            f"(0-65535; 0 picks a free one)")
    if not health.camera_grace > 0:
        raise MotivnetError(f"config health.camera_grace: {health.camera_grace} must be > 0")


def _check_camera(cam: CameraConfig, where: str) -> None:
    if cam.kind != "auto" and cam.kind not in SOURCE_KINDS:
        raise MotivnetError(f"config {where}.kind: {cam.kind!r} is not auto or one of "
                            f"{', '.join(SOURCE_KINDS)}")
    kind = source_kind(cam)
    if cam.width < 0 or cam.height < 0 or (cam.width == 0) != (cam.height == 0):
        raise MotivnetError(f"config {where}: width {cam.width} and height {cam.height} must "
                            f"both be given (pixels above 0) or both be 0")
    if cam.width and kind not in ("v4l2", "libcamera"):
        raise MotivnetError(f"config {where}: width and height are asked of v4l2 and libcamera "
                            f"cameras only, this source is {kind} (set the size in the pipeline "
                            f"or the stream)")
    if cam.format and (kind != "v4l2" or len(cam.format) != 4 or not cam.format.isascii()):
        raise MotivnetError(f"config {where}.format: {cam.format!r}: a v4l2 camera's pixel "
                            f"format is four characters such as MJPG or YUYV")
    if cam.fps < 0 or not cam.timeout > 0:
        raise MotivnetError(f"config {where}: fps {cam.fps} must be >= 0 and timeout "
                            f"{cam.timeout} > 0")
    if isinstance(cam.source, int) and kind not in ("v4l2", "libcamera"):
        raise MotivnetError(f"config {where}.source: {cam.source} is a camera number, this "
                            f"camera's kind is {kind}")
    if kind == "v4l2" and isinstance(cam.source, str) and not (
            cam.source.isdigit() or cam.source.startswith("/dev/")):
        raise MotivnetError(f"config {where}.source: {cam.source!r} is no V4L2 device (an index "
                            f"such as 0 or a path such as /dev/video0)")


def from_dict(data: dict | None, env: dict | None = None) -> Config:
    """A validated Config from plain data, with environment overrides applied."""
    env = os.environ if env is None else env
    cfg = _build(Config, data or {}, "")
    cfg.device = env.get("MOTIVNET_DEVICE") or cfg.device or socket.gethostname()
    cfg.mqtt.host = env.get("MOTIVNET_MQTT_HOST") or cfg.mqtt.host
    if env.get("MOTIVNET_MQTT_PORT"):
        port = env["MOTIVNET_MQTT_PORT"]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise MotivnetError(f"MOTIVNET_MQTT_PORT {port!r} is not a port number (1-65535)")
        cfg.mqtt.port = int(port)
    cfg.mqtt.username = env.get("MOTIVNET_MQTT_USERNAME") or cfg.mqtt.username
    _check(cfg)
    return cfg


def source_kind(cam: CameraConfig) -> str:
    """The camera's kind: as given, else inferred from the source string."""
    if cam.kind != "auto":
        return cam.kind
    source = cam.source
    if isinstance(source, int) or source.isdigit() or source.startswith("/dev/"):
        return "v4l2"
    if source.startswith(LIBCAMERA_PREFIX):
        return "libcamera"
    if "!" in source:
        return "gstreamer"
    if "://" in source:
        return "stream"
    return "file"


def is_file_source(cam: CameraConfig) -> bool:
    """Recorded footage: a video file or an image folder."""
    return source_kind(cam) == "file"


def _relative_to(base: Path, value: str | None, where: str = "") -> str | None:
    if not value:
        return value
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # ~someone who has no home here
        raise MotivnetError(f"config {where}: {value!r}: {exc}") from exc
    return str(path if path.is_absolute() else base / path)


def resolve_paths(cfg: Config, base: Path, env: dict | None = None) -> Config:
    """Every file path of the config resolved against the config file's folder (``/`` is the
    working directory under systemd); recorded camera footage checked to exist (a missing file
    is a typo, not a camera that may come back); the disk spool placed in the state directory
    unless set."""
    env = os.environ if env is None else env
    cfg.model.artifact = _relative_to(base, cfg.model.artifact, "model.artifact")
    cfg.detector.model = _relative_to(base, cfg.detector.model, "detector.model")
    systemd_state = env.get("STATE_DIRECTORY", "").split(":")[0] or None
    cfg.state_dir = _relative_to(base, cfg.state_dir or systemd_state, "state_dir")
    systemd_cache = env.get("CACHE_DIRECTORY", "").split(":")[0] or None  # CacheDirectory=
    cfg.model.cache_dir = _relative_to(base, cfg.model.cache_dir or systemd_cache,
                                       "model.cache_dir")
    m = cfg.mqtt
    m.password_file = _relative_to(base, m.password_file, "mqtt.password_file")
    m.spool.path = _relative_to(base, m.spool.path, "mqtt.spool.path")
    if m.tls is not None:
        for key in ("ca", "cert", "key"):
            value = _relative_to(base, getattr(m.tls, key), f"mqtt.tls.{key}")
            if value and not Path(value).is_file():
                raise MotivnetError(f"config mqtt.tls.{key}: {value} does not exist")
            setattr(m.tls, key, value)
    if not m.spool.path and cfg.state_dir and os.access(cfg.state_dir, os.W_OK):
        m.spool.path = str(Path(cfg.state_dir) / "spool.db")
    for i, cam in enumerate(cfg.cameras):
        if is_file_source(cam):
            cam.source = _relative_to(base, cam.source, f"cameras[{i}].source")
            if not Path(cam.source).exists():
                raise MotivnetError(f"config cameras[{i}].source: {cam.source} does not exist "
                                    f"(a video file or image folder; cameras, devices and URLs "
                                    f"are retried instead)")
    return cfg


def load_config(path: str | Path, env: dict | None = None) -> Config:
    import yaml

    from motivnet_edge.targets.metadata import check_not_world_writable

    path = Path(path)
    if not path.is_file():
        raise MotivnetError(f"config {path} does not exist")
    check_not_world_writable(path, "config")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MotivnetError(f"config {path} is not UTF-8 text (byte {exc.start})") from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a date such as 2024-02-30
        raise MotivnetError(f"config {path} is not valid YAML: {exc}") from exc
    try:
        return resolve_paths(from_dict(data, env), path.resolve().parent, env)
    except MotivnetError as exc:
        raise MotivnetError(f"{path}: {exc}") from exc
    except (OSError, ValueError) as exc:  # a path in it the system cannot even look up
        name = str(getattr(exc, "filename", "") or "")
        raise MotivnetError(f"{path}: a path in it cannot be checked "
                            f"({getattr(exc, 'strerror', None) or exc}): {name[:120]!r}") from exc
