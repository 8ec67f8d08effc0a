"""SIGHUP as a transaction (:meth:`motivnet_edge.edge.daemon.Daemon._apply_reload`): the
config re-read and every new part built and checked before anything running is touched."""

from __future__ import annotations

import logging
import time

from motivnet_edge.edge.config import load_config
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger("motivnet_edge.edge.daemon")


def apply(daemon) -> bool:
    """SIGHUP as a transaction: the config re-read and every new part built and checked
    before anything running is touched. A failure is one ERROR line and changes nothing
    (same pipeline, connection, run id, sequence). A new model, detector or pipeline
    setting swaps the pipeline; new cameras restart the sources; both keep the connection
    and the run id. A changed MQTT section or device name needs a new connection: a
    successor daemon is built (a new run id) and this run ends for it. True then."""
    from motivnet_edge.edge.daemon import Daemon, build_pipeline, check_sources, discovery

    daemon._reload = False
    log.info("SIGHUP: reloading %s", daemon.config_path)
    daemon.notifier.reloading()
    old = daemon.cfg
    try:
        cfg = load_config(daemon.config_path)
        if (cfg.mqtt, cfg.device) != (old.mqtt, old.device):
            daemon.successor = Daemon(cfg, notifier=daemon.notifier, metrics=daemon.metrics,
                                    config_path=daemon.config_path)
            log.info("reloaded: the MQTT section or device changed, a new connection")
            return True
        check_sources(cfg)
        swap = (cfg.model, cfg.detector, cfg.pipeline) != (old.model, old.detector,
                                                           old.pipeline)
        pipeline, target = build_pipeline(cfg) if swap else (daemon.pipeline, daemon.target)
    except MotivnetError as exc:
        log.error("reload of %s failed, running on with the previous config and model: "
                  "%s", daemon.config_path, exc)
        return False
    if swap:
        daemon.pipeline.close()
        daemon.pipeline, daemon.target = pipeline, target
    cameras = cfg.cameras != old.cameras
    if cameras:
        for src in daemon.sources:
            src.stop()
        daemon.pipeline.forget()  # a camera's new source may run on another clock
        for camera, event in daemon.events.end_all(time.time()):
            daemon._publish_event(camera, event)
        daemon.sources = daemon._sources(cfg)
        daemon.counts = {c.name: daemon.counts.get(c.name, [0, 0]) for c in cfg.cameras}
        daemon.faces_mode = {c.name: c.faces for c in cfg.cameras}
    if swap or cameras:  # the orders taken follow the cameras and the images allowed
        daemon.listen(cfg)
    if cameras:
        for src in daemon.sources:
            if src.cfg.name not in daemon.controls.paused:
                src.start()
    daemon.cfg = cfg
    if cfg.mqtt.home_assistant and (swap or cameras):
        messages = discovery(cfg, daemon.pipeline, daemon.target)
        daemon.mqtt.announce_on_connect(messages)
        for msg in messages:
            daemon.mqtt.publish_now(msg)
    log.info("reloaded %s in place (run %s goes on): %s", daemon.config_path, daemon.run_id,
             ", ".join(what for what, changed in (("pipeline", swap),
                                                 ("cameras", cameras)) if changed)
             or "nothing changed")
    return False

