"""The headless daemon: cameras in, faces found and cropped, emotions inferred, results out over
MQTT. ``motivnet-edge run --config FILE``.

SIGTERM/SIGINT finish the frame, flush what can be flushed, publish ``offline`` and exit 0;
SIGHUP reloads the config. Logs go to stderr for journald.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
import uuid
from pathlib import Path

import numpy as np

from motivnet_edge.edge import messages as msgs
from motivnet_edge.edge.assemble import open_pipeline
from motivnet_edge.edge.config import Config, load_config
from motivnet_edge.edge.controls import Controls, detect_state
from motivnet_edge.edge.events import TrackEvents
from motivnet_edge.edge.frames import FrameFeed
from motivnet_edge.edge.home_assistant import EMOTION_REFRESH, discovery_messages
from motivnet_edge.edge.mqtt import MqttPublisher
from motivnet_edge.edge.pipeline import Pipeline, annotated_jpeg
from motivnet_edge.edge.procstat import status_mb
from motivnet_edge.edge.readers import check_source
from motivnet_edge.edge.sdnotify import READY_AFTER, Notifier
from motivnet_edge.edge.sources import LatestFrameSource
from motivnet_edge.edge.stats import Stats
from motivnet_edge.edge.tracker import TrackerSettings

log = logging.getLogger(__name__)


def check_sources(cfg: Config) -> None:
    """Every camera checked once: one this install cannot open at all is a MotivnetError."""
    for i, cam in enumerate(cfg.cameras):
        log.info("camera %s: %s", cam.name, check_source(cam, f"cameras[{i}] ({cam.name})"))


def build_pipeline(cfg: Config) -> tuple[Pipeline, str]:
    """The per-frame pipeline a config describes, and the target profile it resolved to."""
    p, m = cfg.pipeline, cfg.model
    pipeline, target = open_pipeline(
        m.artifact, m.target, m.engine, m.threads, cfg.detector,
        TrackerSettings(p.smoothing, p.iou_threshold, p.track_ttl), p.max_faces,
        p.box_crop_fallback, p.derive_valence_arousal, m.cache_dir)
    engine = pipeline.engine
    log.info("target %s: %s on %s %s", target, engine.path.name, engine.name, engine.settings)
    log.info("face detector: %s in %s", cfg.detector.kind, pipeline.detector.engine)
    return pipeline, target


def discovery(cfg: Config, pipeline: Pipeline, target: str) -> list:
    """Home Assistant's discovery configs for these cameras and this model."""
    engine = pipeline.engine
    return discovery_messages(
        cfg.mqtt.discovery_prefix, cfg.mqtt.prefix, cfg.device, [c.name for c in cfg.cameras],
        list(pipeline.labels), f"{engine.path.name} ({engine.name}, {target})",
        cfg.mqtt.stats_interval, pipeline.values, pipeline.values_source == "derived",
        images_allowed(cfg), cfg.mqtt.events)


def images_allowed(cfg: Config) -> bool:
    """Whether any image may leave the device: every frame's, or snapshots on request."""
    return cfg.pipeline.publish_images or cfg.pipeline.snapshots


def build_publisher(cfg: Config, pipeline: Pipeline, target: str) -> MqttPublisher:
    """The MQTT side; with ``home_assistant``, its discovery configs sent on every connect."""
    cams = [c.name for c in cfg.cameras]
    client_id = cfg.mqtt.client_id or f"{cfg.mqtt.prefix}-{cfg.device}-{'-'.join(cams)}"
    publisher = MqttPublisher(cfg.mqtt, cfg.device, client_id)
    if cfg.mqtt.home_assistant:
        publisher.announce_on_connect(discovery(cfg, pipeline, target))
    return publisher


class Daemon:
    """Cameras -> :class:`Pipeline` -> :class:`MqttPublisher`. The parts are built from the
    config unless given (tests and benchmarks pass their own)."""

    def __init__(self, cfg: Config, paced_files: bool = True, pipeline: Pipeline | None = None,
                 publisher: MqttPublisher | None = None, target: str = "given",
                 notifier: Notifier | None = None, metrics=None,
                 config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path  # what SIGHUP re-reads
        self.successor: Daemon | None = None  # a reload that needs a new MQTT connection
        self.notifier = notifier or Notifier()
        self.metrics = metrics  # health.Metrics when /metrics is served
        check_sources(cfg)  # before the model: an error at start, not a reopen loop
        if pipeline is None:
            pipeline, self.target = build_pipeline(cfg)
        else:
            self.target = target
        self.pipeline = pipeline
        self.mqtt = publisher or build_publisher(cfg, pipeline, self.target)
        self.listen(cfg)
        self.run_id = uuid.uuid4().hex[:8]
        self.paced_files = paced_files
        self.sources = self._sources(cfg)
        self.stats = Stats()
        self.processed = 0
        self.counts = {c.name: [0, 0] for c in cfg.cameras}  # frames, faces per camera
        self.last_fps = 0.0
        # what was last published per camera: (emotion, when), the faces' signature and when,
        # whether a face was present
        self._emotion: dict[str, tuple[str, float]] = {}
        self._faces_sent: dict[str, tuple[tuple, float]] = {}
        self._present: dict[str, bool] = {}
        self._values: dict[str, dict[str, float]] = {}  # valence/arousal of the top face
        self.faces_mode = {c.name: c.faces for c in cfg.cameras}
        self.events = TrackEvents(cfg.pipeline.track_ttl)
        self._stop = False
        self._reload = False

    def listen(self, cfg: Config) -> None:
        """The orders this config's cameras take over MQTT (pause, resume, snapshot); a
        reload keeps the cameras paused that are still there."""
        before = getattr(self, "controls", None)
        self.controls = Controls(cfg.mqtt.prefix, cfg.device, [c.name for c in cfg.cameras],
                                 cfg.state_dir, images_allowed(cfg))
        if before is not None:
            self.controls.paused |= before.paused & set(self.controls.cameras)
        self.mqtt.listen(self.controls.topics(), self.controls.receive)

    def _sources(self, cfg: Config) -> list[LatestFrameSource]:
        return [self._source(c) for c in cfg.cameras]

    def _source(self, cam) -> LatestFrameSource:
        return LatestFrameSource(cam, self._camera_status, paced=self.paced_files)

    def _camera_status(self, camera: str, status: str, detail: str, reopens: int) -> None:
        trouble = status in ("lost", "unavailable")  # an expected end is not a warning
        log.log(logging.WARNING if trouble else logging.INFO, "camera %s %s: %s", camera,
                status, detail)
        self.mqtt.publish(msgs.camera_status_message(self.cfg.mqtt.prefix, self.cfg.device,
                                                     camera, status, detail, time.time(),
                                                     reopens))

    def process(self, camera: str, index: int, frame: np.ndarray,
                found: tuple[list, float] | None = None,
                clock: float | None = None) -> dict | None:
        """One frame through the pipeline (its faces and detection time ``found`` already, or
        detected now; its tracks aged on recorded footage's ``clock`` when given); its faces
        published as the camera's ``faces`` setting asks, its tracks' events, presence and
        dominant emotion on change."""
        result = self.pipeline.classify(camera, frame, *found, now=clock) \
            if found is not None else self.pipeline.process(camera, frame, now=clock)
        self.stats.add(result.timings)
        self.counts[camera][0] += 1
        self.counts[camera][1] += len(result.faces)
        if self.metrics is not None:
            self.metrics.observe(camera, result.timings)
        now = time.time()
        self._track_states(camera, result.faces, now)
        # images: off by default, no image leaves the device; a snapshot asked for is sent
        # with faces or none
        if camera in self.controls.snapshot_due or (self.cfg.pipeline.publish_images
                                                     and result.faces):
            self.controls.snapshot_due.discard(camera)
            self.mqtt.publish_now(msgs.image_message(self.cfg.mqtt.prefix, self.cfg.device,
                                                     camera, annotated_jpeg(frame, result.faces)))
        if not result.faces:
            return None
        seq = None
        if self._faces_due(camera, result.faces, now):
            seq = self.mqtt.publish_faces(camera, now, index, result.faces, result.timings,
                                          self.run_id)
        top = max(result.faces, key=lambda f: f["score"])
        for name in self.pipeline.values:  # the top face's, for the stats
            self._values.setdefault(name, {})[camera] = top[name]
        prefix, device = self.cfg.mqtt.prefix, self.cfg.device
        label, when = self._emotion.get(camera, (None, 0.0))
        if label != top["label"] or now - when >= EMOTION_REFRESH:  # retained: on change
            self._emotion[camera] = (top["label"], now)
            self.mqtt.publish(msgs.emotion_message(prefix, device, camera, top["label"],
                                                   top["score"], now))
        return {"seq": seq, "faces": result.faces}

    def _faces_due(self, camera: str, faces: list[dict], now: float) -> bool:
        """Whether this frame's faces message is sent: every frame, on a change of the tracks
        or their labels, or at most N per second."""
        mode = self.faces_mode[camera]
        signature = tuple(sorted((f["track"], f["label"]) for f in faces))
        last, when = self._faces_sent.get(camera, (None, -1e18))
        due = mode == "every" or (signature != last if mode == "change"
                                  else now - when >= 1.0 / float(mode))
        if due:
            self._faces_sent[camera] = (signature, now)
        return due

    def _track_states(self, camera: str, faces: list[dict], now: float) -> None:
        """Track events and the camera's presence, published as they happen."""
        for event in self.events.update(camera, faces, now):
            self._publish_event(camera, event)
        present = self.events.in_view(camera) > 0
        if self._present.get(camera) != present:
            self._present[camera] = present
            self.mqtt.publish(msgs.presence_message(self.cfg.mqtt.prefix, self.cfg.device,
                                                    camera, present))

    def _publish_event(self, camera: str, event: dict) -> None:
        if self.cfg.mqtt.events:
            self.mqtt.publish(msgs.event_message(self.cfg.mqtt.prefix, self.cfg.device, camera,
                                                 event))

    def _publish_stats(self) -> None:
        report = self.stats.report()
        self.last_fps = report["fps"]
        report.update(
            skipped_frames={s.cfg.name: s.skipped for s in self.sources},
            queue_depth={s.cfg.name: s.pending for s in self.sources},
            camera_reopens={s.cfg.name: s.reopens for s in self.sources},
            video_loops={s.cfg.name: s.loops for s in self.sources},
            box_crop_faces=self.pipeline.box_crop_faces,
            change_detections=self.pipeline.change_detections,
            spool_depth=len(self.mqtt.spool), spool_dropped=self.mqtt.spool.dropped,
            reconnects=self.mqtt.reconnects, broker_connected=self.mqtt.connected.is_set(),
            connect_failures=self.mqtt.connect_failures, rss_mb=round(status_mb("VmRSS") or 0.0, 1),
            faces_in_view={cam: self.events.in_view(cam) for cam in self.counts},
            **self._values,
            processed=self.processed, target=self.target)
        log.info("stats %s", report)
        self.mqtt.publish_now(msgs.stats_message(self.cfg.mqtt.prefix, self.cfg.device, report))

    def stop(self, *_args) -> None:
        self._stop = True

    def request_reload(self, *_args) -> None:
        self._reload = True

    def run(self, max_frames: int | None = None) -> int:
        """Process frames until stopped, ``max_frames`` processed, or every source was recorded
        footage that ended; returns 0, or 1 when results were lost at exit."""
        self.mqtt.start()
        for s in self.sources:
            paused = s.cfg.name in self.controls.paused
            self.mqtt.publish(detect_state(self.cfg.mqtt.prefix, self.cfg.device, s.cfg.name,
                                           not paused))
            if paused:
                self._camera_status(s.cfg.name, "paused", "paused by an order (kept in "
                                    "state_dir)", s.reopens)
            else:
                s.start()
        started = last_stats = time.monotonic()
        lost = 0
        cams = ", ".join(s.cfg.name for s in self.sources)
        feed = FrameFeed(self.cfg.pipeline.overlap)
        try:
            while not self._stop and (max_frames is None or self.processed < max_frames):
                if self._reload:
                    self._handle(feed.drain())  # its detection ran with the old pipeline
                    if self._apply_reload():
                        break  # the successor takes over
                    cams = ", ".join(s.cfg.name for s in self.sources)
                self.notifier.ping()
                if not self.notifier.ready and time.monotonic() - started > READY_AFTER:
                    self.notifier.mark_ready(f"running; no frame yet from {cams}")
                self._obey()
                active = [s for s in self.sources if s.cfg.name not in self.controls.paused]
                if active and all(src.finished for src in self.sources):
                    self._handle(feed.drain())
                    log.info("every source ended: stopping")
                    break
                if not active:
                    time.sleep(0.1)  # every camera paused: wait for an order
                self._handle(feed.round(active, self.pipeline), max_frames)
                if self.processed and not self.notifier.ready:  # once, not a string per frame
                    self.notifier.mark_ready(f"processing {cams} with {self.target}")
                if time.monotonic() - last_stats >= self.cfg.mqtt.stats_interval:
                    self._publish_stats()
                    last_stats = time.monotonic()
            if self._stop:  # finish the frame whose detection was running
                self._handle(feed.drain())
        finally:
            feed.close()
            for s in self.sources:
                s.stop()
            if not self.reloading:  # the tracks end with the daemon
                for camera, event in self.events.end_all(time.time()):
                    self._publish_event(camera, event)
            self._publish_stats()
            lost = self.mqtt.stop(flush_timeout=self.cfg.mqtt.flush_timeout)
            if not self.reloading:  # a reload closes it once the new one is built
                self.pipeline.close()
        return 1 if lost else 0

    def _obey(self) -> None:
        """The orders received over MQTT (:mod:`motivnet_edge.edge.controls`): a camera
        paused (its source stopped: the device is released) or resumed (a new source), its
        state published and kept; a snapshot asked of a detecting camera."""
        for camera, order, value in self.controls.take():
            index = next(i for i, s in enumerate(self.sources) if s.cfg.name == camera)
            src, paused = self.sources[index], camera in self.controls.paused
            if order == "snapshot":
                if paused:
                    log.warning("snapshot of %s ignored: the camera is paused", camera)
                else:
                    self.controls.snapshot_due.add(camera)
                continue
            if (value == "OFF") == paused:
                continue  # already so
            if value == "OFF":
                self.controls.paused.add(camera)
                src.stop()
                self._camera_status(camera, "paused", "paused by an order", src.reopens)
            else:
                self.controls.paused.discard(camera)
                self.sources[index] = self._source(src.cfg).start()
            log.info("camera %s %s by an order", camera, "paused" if value == "OFF"
                     else "resumed")
            self.controls.save()
            self.mqtt.publish(detect_state(self.cfg.mqtt.prefix, self.cfg.device, camera,
                                           value == "ON"))

    def _handle(self, frames, max_frames: int | None = None) -> None:
        """Each frame classified and published, up to ``max_frames`` processed in all."""
        for taken in frames:
            if max_frames is not None and self.processed >= max_frames:
                return  # taken one ahead of the limit: dropped
            self.process(taken.camera, taken.index, taken.frame, taken.faces(), taken.clock)
            self.processed += 1

    @property
    def reloading(self) -> bool:
        return self.successor is not None and not self._stop

    def _apply_reload(self) -> bool:
        """SIGHUP (:func:`motivnet_edge.edge.reload.apply`); True when a successor takes
        over."""
        from motivnet_edge.edge.reload import apply

        return apply(self)

    @property
    def model_name(self) -> str:
        return self.pipeline.engine.path.name

    @property
    def engine_name(self) -> str:
        return self.pipeline.engine.name


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``motivnet-edge run``."""
    p.add_argument("--config", type=Path, required=True, help="YAML config file")
    p.add_argument("--max-frames", type=int, help="stop after N processed frames")


def run(args: argparse.Namespace) -> int:
    """``motivnet-edge run``: the daemon until SIGTERM or SIGINT (SIGHUP reloads its config)."""
    cfg = load_config(args.config)
    current: list[Daemon] = []
    server = None
    if cfg.health.port is not None:  # before the model loads: /healthz says 503 "starting"
        from motivnet_edge.edge.health import HealthServer

        server = HealthServer(cfg.health, lambda: current[0] if current else None).start()
    try:
        current.append(Daemon(cfg, metrics=server.metrics if server else None,
                              config_path=args.config))
        while True:
            daemon = current[0]
            signal.signal(signal.SIGTERM, daemon.stop)
            signal.signal(signal.SIGINT, daemon.stop)
            if hasattr(signal, "SIGHUP"):
                signal.signal(signal.SIGHUP, daemon.request_reload)
            code = daemon.run(args.max_frames)
            if not daemon.reloading:
                daemon.notifier.stopping()
                return code
            daemon.pipeline.close()
            current[0] = daemon.successor
    finally:
        if server is not None:
            server.stop()
