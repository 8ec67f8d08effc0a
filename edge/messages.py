"""MQTT topics and payloads as pure functions returning plain data; the client is separate.

Topics, with ``prefix`` (default ``motivnet``) and ``device`` (default the hostname):
``<prefix>/<device>/availability``, ``<prefix>/<device>/<camera>/faces``,
``<prefix>/<device>/<camera>/emotion`` (retained), ``<prefix>/<device>/<camera>/status``
(retained) and ``<prefix>/<device>/stats``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SCHEMA = "motivnet-edge/faces/1"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def topic(prefix: str, device: str, *parts: str) -> str:
    return "/".join([prefix, device, *parts])


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def faces_message(prefix: str, device: str, camera: str, seq: int, ts: float, frame: int,
                  faces: list[dict], timings: dict, run: str) -> Message:
    """One message per processed frame with faces. Each face: track, box [x, y, w, h], label,
    score, probs by label."""
    return Message(topic(prefix, device, camera, "faces"), _json({
        "schema": SCHEMA, "seq": seq, "ts": round(ts, 3), "camera": camera, "frame": frame,
        "run": run, "faces": faces, "timings_ms": {k: round(v, 2) for k, v in timings.items()},
    }), qos=1)


def emotion_message(prefix: str, device: str, camera: str, label: str | None, score: float,
                    ts: float) -> Message:
    """The current dominant emotion of a camera, retained."""
    return Message(topic(prefix, device, camera, "emotion"),
                   _json({"label": label, "score": round(score, 4), "ts": round(ts, 3)}),
                   qos=1, retain=True)


def availability_message(prefix: str, device: str, online: bool) -> Message:
    return Message(topic(prefix, device, "availability"),
                   b"online" if online else b"offline", qos=1, retain=True)


def camera_status_message(prefix: str, device: str, camera: str, status: str, detail: str,
                          ts: float, reopens: int) -> Message:
    return Message(topic(prefix, device, camera, "status"),
                   _json({"status": status, "detail": detail, "ts": round(ts, 3),
                          "reopens": reopens}), qos=1, retain=True)


def image_message(prefix: str, device: str, camera: str, jpeg: bytes) -> Message:
    """The annotated frame as JPEG; only sent when the config asks for images."""
    return Message(topic(prefix, device, camera, "image"), jpeg, qos=0)


def stats_message(prefix: str, device: str, stats: dict) -> Message:
    return Message(topic(prefix, device, "stats"), _json(stats), qos=0)


def event_message(prefix: str, device: str, camera: str, event: dict) -> Message:
    """A track's event (:mod:`motivnet_edge.edge.events`): new, update or end."""
    return Message(topic(prefix, device, camera, "events"),
                   _json({"schema": SCHEMA, "camera": camera, **event}), qos=1)


def presence_message(prefix: str, device: str, camera: str, present: bool) -> Message:
    """Whether any face is tracked on ``camera``, retained, written when it changes."""
    return Message(topic(prefix, device, camera, "presence"), b"ON" if present else b"OFF",
                   qos=1, retain=True)
