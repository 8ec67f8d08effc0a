"""Health and metrics over HTTP, for an operator's monitoring: ``/healthz`` and ``/metrics``.

Off unless the config gives ``health.port``; bound to 127.0.0.1 unless ``health.bind`` says
otherwise. ``/healthz`` answers 200 when the model is loaded, every camera delivered a frame
within ``health.camera_grace`` seconds (or is still within that budget since the start, or is
recorded footage that ended), and the broker is connected or the spool is below its bound;
otherwise 503, with every reason, one per line. ``/metrics`` is Prometheus' text format
(``prometheus_client``, the ``metrics`` extra): read from the running daemon at each scrape,
except the per-stage latency histograms, observed per frame. The server outlives a SIGHUP
reload: it reads whichever daemon runs now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from motivnet_edge.edge.config import HealthConfig
from motivnet_edge.edge.procstat import status_mb
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)
# per-stage latency buckets, seconds: a frame's stages take from tens of microseconds to seconds
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def problems(daemon, grace: float, now: float | None = None) -> list[str]:
    """Why ``daemon`` is unhealthy (empty: healthy)."""
    now = time.monotonic() if now is None else now
    found = []
    if daemon.pipeline is None or daemon.pipeline.engine is None:
        found.append("model: not loaded")
    for src in daemon.sources:
        seen = src.last_frame_at or src.started_at
        if not src.ended and seen is not None and now - seen > grace:
            what = "no frame yet" if src.last_frame_at is None else "no frame"
            found.append(f"camera {src.cfg.name}: {what} for {now - seen:.0f} s "
                         f"(budget {grace:g} s; {src.reopens} reopens)")
    mqtt = daemon.mqtt
    if not mqtt.connected.is_set() and len(mqtt.spool) >= mqtt.spool.max:
        found.append(f"broker: disconnected and the spool is full ({len(mqtt.spool)} of "
                     f"{mqtt.spool.max}; the oldest are dropped)")
    return found


class Metrics:
    """The registry ``/metrics`` serves: a collector reading the daemon, and the latency
    histograms the frame loop feeds."""

    def __init__(self, current: Callable) -> None:
        try:
            from prometheus_client import CollectorRegistry, Histogram
        except ImportError as exc:
            raise MotivnetError("health.port: /metrics needs prometheus_client: "
                                "pip install 'motivnet-edge[metrics]'") from exc
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("motivnet_stage_latency_seconds", "Per-frame latency by stage",
                                 ["camera", "stage"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(_DaemonCollector(current))

    def observe(self, camera: str, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.latency.labels(camera, stage).observe(ms / 1000.0)

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _DaemonCollector:
    def __init__(self, current: Callable) -> None:
        self.current = current

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        d = self.current()
        if d is None:
            return
        cams = [s.cfg.name for s in d.sources]

        def per_camera(kind, name, doc, values):
            family = kind(name, doc, labels=["camera"])
            for cam, value in zip(cams, values, strict=True):
                family.add_metric([cam], value)
            return family

        yield per_camera(CounterMetricFamily, "motivnet_frames", "Frames processed",
                         [d.counts[c][0] for c in cams])
        yield per_camera(CounterMetricFamily, "motivnet_faces", "Faces classified",
                         [d.counts[c][1] for c in cams])
        yield per_camera(CounterMetricFamily, "motivnet_skipped_frames",
                         "Frames skipped for a newer one", [s.skipped for s in d.sources])
        yield per_camera(CounterMetricFamily, "motivnet_camera_reopens", "Camera reopens",
                         [s.reopens for s in d.sources])
        yield GaugeMetricFamily("motivnet_fps", "Frames per second over the last stats window",
                                value=d.last_fps)
        m = d.mqtt
        yield GaugeMetricFamily("motivnet_spool_depth", "Results waiting for the broker",
                                value=len(m.spool))
        yield CounterMetricFamily("motivnet_spool_dropped", "Results dropped from a full spool",
                                  value=m.spool.dropped)
        yield GaugeMetricFamily("motivnet_broker_connected", "1 while connected to the broker",
                                value=float(m.connected.is_set()))
        yield CounterMetricFamily("motivnet_mqtt_reconnects", "Reconnects to the broker",
                                  value=m.reconnects)
        yield CounterMetricFamily("motivnet_mqtt_connect_failures", "Failed connects",
                                  value=m.connect_failures)
        yield GaugeMetricFamily("motivnet_resident_memory_bytes", "Resident set size",
                                value=(status_mb("VmRSS") or 0.0) * 2 ** 20)
        info = GaugeMetricFamily("motivnet_model_info", "The model and target running",
                                 labels=["model", "target", "engine", "device"])
        info.add_metric([d.model_name, d.target, d.engine_name, d.cfg.device], 1.0)
        yield info


class HealthServer:
    """``/healthz`` and ``/metrics`` in a thread, for ``current()``, the daemon running now."""

    def __init__(self, cfg: HealthConfig, current: Callable) -> None:
        self.cfg = cfg
        self.current = current
        self.metrics = Metrics(current)
        handler = type("Handler", (_Handler,), {"server_ref": self})
        try:
            self.httpd = ThreadingHTTPServer((cfg.bind, cfg.port), handler)
        except OSError as exc:
            raise MotivnetError(f"health: cannot listen on {cfg.bind}:{cfg.port}: "
                                f"{exc.strerror or exc}") from exc
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health",
                                       daemon=True)

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health: http://%s:%d/healthz and /metrics", self.cfg.bind, self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def health(self) -> tuple[int, bytes]:
        daemon = self.current()
        found = ["starting"] if daemon is None else problems(daemon, self.cfg.camera_grace)
        return (503, ("\n".join(found) + "\n").encode()) if found else (200, b"ok\n")


class _Handler(BaseHTTPRequestHandler):
    server_ref: HealthServer

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path.split("?")[0] == "/healthz":
            code, body = self.server_ref.health()
            ctype = "text/plain; charset=utf-8"
        elif self.path.split("?")[0] == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            code, body, ctype = 200, self.server_ref.metrics.text(), CONTENT_TYPE_LATEST
        else:
            code, body, ctype = 404, b"not found: /healthz or /metrics\n", "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # scrapes every few seconds: not for the journal
        pass
