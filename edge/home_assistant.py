"""Home Assistant MQTT discovery, as its documentation describes it today: pure functions that
return the retained discovery messages of one daemon (one device in Home Assistant).

Per camera: the emotion as an ``enum`` sensor whose ``options`` are the model's labels (its state
topic is written when the emotion changes and refreshed every ``EMOTION_REFRESH`` s, so
``expire_after`` marks a daemon that stopped reporting; no ``json_attributes_topic``, which would
make Home Assistant record every update), a ``face present`` binary sensor, valence and arousal
when the model predicts them, and the faces in view as a diagnostic sensor. Per device: fps, p95
latency and spool depth as diagnostic sensors with ``state_class: measurement``, from the
``stats`` topic. Every config carries ``origin`` and the device's ``model`` and ``sw_version``.
"""

from __future__ import annotations

from motivnet_edge import __version__
from motivnet_edge.edge.controls import command_topic
from motivnet_edge.edge.messages import Message, _json, topic

EVENT_TYPES = ("new", "update", "end")  # a track's events (edge/events.py)

EMOTION_REFRESH = 300.0  # s: the retained emotion is written again after this long
EMOTION_EXPIRE = 900  # s: Home Assistant's expire_after for it (three refreshes missed)
ORIGIN = {"name": "motivnet-edge", "sw_version": __version__,
          "support_url": "https://pypi.org/project/motivnet-edge/"}


def _uid(*parts: str) -> str:
    return "_".join(parts).replace("-", "_").replace("/", "_")


def discovery_messages(discovery: str, prefix: str, device: str, cameras: list[str],
                       labels: list[str], model: str, stats_interval: float,
                       continuous: tuple[str, ...] = (), derived: bool = False,
                       snapshots: bool = False, events: bool = False) -> list[Message]:
    """Every retained discovery config for a daemon with ``cameras`` running ``model``;
    ``continuous``: the continuous outputs (valence, arousal), a sensor each per camera, from
    the ``stats`` topic (the top face's smoothed value); ``derived``: they are derived from the
    class probabilities, which the sensors' names say. Per camera also the controls
    (:mod:`motivnet_edge.edge.controls`): a switch that pauses it, and where ``snapshots`` are
    allowed a snapshot button and the image it publishes; with ``events``, an event entity for
    its tracks' events."""
    common = {
        "availability_topic": topic(prefix, device, "availability"),
        "payload_available": "online", "payload_not_available": "offline",
        "origin": ORIGIN,
        "device": {"identifiers": [_uid(prefix, device)], "name": f"MotivNet {device}",
                   "manufacturer": "motivnet-edge", "model": model,
                   "sw_version": __version__}}
    stats = topic(prefix, device, "stats")
    stale = max(30, int(3 * stats_interval))  # three stats messages missed
    out = []

    def add(component: str, uid: str, config: dict) -> None:
        out.append(Message(f"{discovery}/{component}/{uid}/config",
                           _json({**config, "unique_id": uid, **common}), qos=1, retain=True))

    for cam in cameras:
        _controls(add, prefix, device, cam, snapshots, events)
        add("sensor", _uid(prefix, device, cam, "emotion"), {
            "name": f"{cam} emotion", "state_topic": topic(prefix, device, cam, "emotion"),
            "value_template": "{{ value_json.label }}", "device_class": "enum",
            "options": list(labels), "expire_after": EMOTION_EXPIRE,
            "icon": "mdi:emoticon-outline"})
        add("binary_sensor", _uid(prefix, device, cam, "face"), {
            "name": f"{cam} face present",
            "state_topic": topic(prefix, device, cam, "presence"),
            "payload_on": "ON", "payload_off": "OFF", "device_class": "occupancy"})
        for name in continuous:
            add("sensor", _uid(prefix, device, cam, name), {
                "name": f"{cam} {name}{' (derived)' if derived else ''}", "state_topic": stats,
                "value_template": f"{{{{ value_json.{name}['{cam}'] }}}}",
                "state_class": "measurement", "expire_after": stale,
                "icon": "mdi:emoticon-happy-outline" if name == "valence" else "mdi:flash"})
        add("sensor", _uid(prefix, device, cam, "faces"), {
            "name": f"{cam} faces in view", "state_topic": stats,
            "value_template": f"{{{{ value_json.faces_in_view['{cam}'] }}}}",
            "state_class": "measurement", "unit_of_measurement": "faces",
            "entity_category": "diagnostic", "expire_after": stale,
            "icon": "mdi:account-group"})
    for key, name, template, unit, extra in (
            ("fps", "frames per second", "{{ value_json.fps }}", "fps", {}),
            ("latency", "p95 latency", "{{ value_json.latency_ms.total.p95 }}", "ms",
             {"device_class": "duration"}),
            ("spool", "spool depth", "{{ value_json.spool_depth }}", "messages", {})):
        add("sensor", _uid(prefix, device, key), {
            "name": name, "state_topic": stats, "value_template": template,
            "state_class": "measurement", "unit_of_measurement": unit,
            "entity_category": "diagnostic", "expire_after": stale, **extra})
    return out


def _controls(add, prefix: str, device: str, cam: str, snapshots: bool, events: bool) -> None:
    """A camera's switch (detecting or paused), snapshot button and image, and event entity."""
    add("switch", _uid(prefix, device, cam, "detect"), {
        "name": f"{cam} detection", "command_topic": command_topic(prefix, device, cam, "detect"),
        "state_topic": topic(prefix, device, cam, "detect"), "payload_on": "ON",
        "payload_off": "OFF", "icon": "mdi:cctv"})
    if snapshots:
        add("button", _uid(prefix, device, cam, "snapshot"), {
            "name": f"{cam} snapshot",
            "command_topic": command_topic(prefix, device, cam, "snapshot"),
            "payload_press": "PRESS", "icon": "mdi:camera"})
        add("image", _uid(prefix, device, cam, "image"), {
            "name": f"{cam} snapshot image", "image_topic": topic(prefix, device, cam, "image"),
            "content_type": "image/jpeg"})
    if events:
        add("event", _uid(prefix, device, cam, "events"), {
            "name": f"{cam} face events", "state_topic": topic(prefix, device, cam, "events"),
            "event_types": list(EVENT_TYPES),
            "value_template": "{{ {'event_type': value_json.type, 'track': value_json.track, "
                              "'label': value_json.label} | to_json }}"})
