"""Orders the daemon takes over MQTT (Home Assistant's switch and button per camera).

- ``<prefix>/<device>/<camera>/detect/set``: ``ON`` or ``OFF`` resumes or pauses the camera.
  A paused camera's source is released (the device is closed, so its LED goes off); the state
  is published retained on ``<camera>/detect`` and kept in ``state_dir/controls.json``, so a
  restarted daemon keeps the camera paused.
- ``<prefix>/<device>/<camera>/snapshot/set``: ``PRESS`` publishes the camera's next frame,
  annotated, to ``<camera>/image`` once: only where the config allows images
  (``pipeline.snapshots`` or ``pipeline.publish_images``); otherwise the order is refused.

Orders arrive on the MQTT client's thread; :meth:`Controls.take` hands them to the daemon's
loop. Anything else on these topics (another payload, another camera) is logged and ignored.
"""

from __future__ import annotations

import json
import logging
import queue
from pathlib import Path

from motivnet_edge.edge.messages import Message, topic
from motivnet_edge.targets.files import write_json

log = logging.getLogger(__name__)
STATE_FILE = "controls.json"
ORDERS = {"detect": ("ON", "OFF"), "snapshot": ("PRESS",)}


def command_topic(prefix: str, device: str, camera: str, order: str) -> str:
    """Where ``order`` (detect, snapshot) is given for ``camera``."""
    return topic(prefix, device, camera, order, "set")


def detect_state(prefix: str, device: str, camera: str, on: bool) -> Message:
    """Whether ``camera`` is detecting (ON) or paused (OFF), retained."""
    return Message(topic(prefix, device, camera, "detect"), b"ON" if on else b"OFF", qos=1,
                   retain=True)


class Controls:
    """The paused cameras (kept in ``state_dir``), the snapshots asked for, and the orders
    received and not yet carried out."""

    def __init__(self, prefix: str, device: str, cameras: list[str], state_dir: str | None,
                 snapshots: bool) -> None:
        self.prefix, self.device, self.cameras = prefix, device, list(cameras)
        self.snapshots = snapshots
        self.path = Path(state_dir) / STATE_FILE if state_dir else None
        self.paused: set[str] = self._load() & set(self.cameras)
        self.snapshot_due: set[str] = set()
        self._orders: queue.SimpleQueue = queue.SimpleQueue()

    def _load(self) -> set[str]:
        if self.path is None or not self.path.is_file():
            return set()
        try:
            paused = json.loads(self.path.read_text())["paused"]
            if not isinstance(paused, list) or not all(isinstance(c, str) for c in paused):
                raise ValueError(f"paused is {paused!r}, not a list of camera names")
            return set(paused)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s cannot be read (%s): every camera starts detecting", self.path, exc)
            return set()

    def save(self) -> None:
        """The paused cameras written (atomically) to ``state_dir``, when there is one."""
        if self.path is not None:
            try:
                write_json(self.path, {"paused": sorted(self.paused)})
            except OSError as exc:
                log.warning("cannot keep the paused cameras in %s: %s", self.path, exc)

    def topics(self) -> list[str]:
        """The command topics to subscribe to."""
        return [command_topic(self.prefix, self.device, cam, order) for cam in self.cameras
                for order in ORDERS if order != "snapshot" or self.snapshots]

    def receive(self, name: str, payload: bytes) -> None:
        """An MQTT message on a command topic (the client's thread): a valid order is queued,
        anything else logged and ignored."""
        parts = name.split("/")
        camera, order = (parts[-3], parts[-2]) if len(parts) >= 3 else ("", "")
        text = payload.decode("utf-8", "replace").strip()[:40]
        if camera not in self.cameras or order not in ORDERS:
            log.warning("ignored an order on %s: no camera %r with an order %r", name, camera,
                        order)
        elif order == "snapshot" and not self.snapshots:
            log.warning("ignored a snapshot order for %s: images are not allowed by the config "
                        "(pipeline.snapshots)", camera)
        elif text.upper() not in ORDERS[order]:
            log.warning("ignored an order on %s: payload %r is not one of %s", name, text,
                        ", ".join(ORDERS[order]))
        else:
            self._orders.put((camera, order, text.upper()))

    def take(self) -> list[tuple[str, str, str]]:
        """The orders received since the last call: (camera, order, value)."""
        out = []
        while True:
            try:
                out.append(self._orders.get_nowait())
            except queue.Empty:
                return out
