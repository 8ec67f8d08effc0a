"""Home Assistant discovery payloads checked against the fields HA's MQTT discovery schema
requires and the rules its documentation states for each platform."""

import json

from motivnet_edge.edge.home_assistant import EMOTION_EXPIRE, discovery_messages
from motivnet_edge.targets.labels import AFFECTNET7

# what HA's schema requires or forbids, per platform (home-assistant.io: MQTT discovery, MQTT
# sensor, binary sensor, switch, button, image and event, sensor entity docs)
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "switch": {"command_topic"}, "button": {"command_topic"},
            "image": {"image_topic"}, "event": {"state_topic", "event_types"}}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}


def schema_errors(topic: str, cfg: dict) -> list[str]:
    platform = topic.split("/")[1]
    errors = [f"{topic}: {k} missing" for k in REQUIRED[platform] - set(cfg)]
    if not cfg.get("unique_id"):
        errors.append(f"{topic}: no unique_id (the entity could not be edited in HA)")
    if topic.split("/")[-2] != cfg.get("unique_id"):
        errors.append(f"{topic}: object id is not the unique_id")
    device = cfg.get("device", {})
    if not (device.get("identifiers") or device.get("connections")):
        errors.append(f"{topic}: device needs identifiers or connections")
    if "name" not in cfg.get("origin", {}):
        errors.append(f"{topic}: origin needs a name")
    if cfg.get("device_class") == "enum":
        if not cfg.get("options"):
            errors.append(f"{topic}: an enum sensor needs options")
        if "state_class" in cfg or "unit_of_measurement" in cfg:
            errors.append(f"{topic}: an enum sensor takes no state_class or unit")
    if "state_class" in cfg and cfg["state_class"] not in STATE_CLASSES:
        errors.append(f"{topic}: state_class {cfg['state_class']}")
    if "entity_category" in cfg and cfg["entity_category"] not in ENTITY_CATEGORIES:
        errors.append(f"{topic}: entity_category {cfg['entity_category']}")
    if "expire_after" in cfg and not (isinstance(cfg["expire_after"], int)
                                      and cfg["expire_after"] > 0):
        errors.append(f"{topic}: expire_after must be a positive integer")
    if platform in ("binary_sensor", "switch") and not {"payload_on", "payload_off"} <= set(cfg):
        errors.append(f"{topic}: payload_on/payload_off")
    if platform == "event" and not (isinstance(cfg.get("event_types"), list)
                                    and cfg["event_types"]):
        errors.append(f"{topic}: event_types must be a non-empty list")
    return errors


def configs(cameras=("door", "yard"), snapshots=True, events=True):
    msgs = discovery_messages("homeassistant", "motivnet", "box-1", list(cameras),
                              list(AFFECTNET7), "student-int8.tflite (litert, rpi)", 10.0,
                              snapshots=snapshots, events=events)
    assert all(m.retain and m.qos == 1 for m in msgs)
    return {m.topic: json.loads(m.payload) for m in msgs}


def test_every_discovery_payload_passes_the_schema():
    found = configs()
    assert [e for t, c in found.items() for e in schema_errors(t, c)] == []
    assert len({c["unique_id"] for c in found.values()}) == len(found)


def test_the_emotion_sensor_is_an_enum_of_the_models_labels_without_attributes():
    emotion = configs()["homeassistant/sensor/motivnet_box_1_door_emotion/config"]
    assert emotion["device_class"] == "enum" and emotion["options"] == list(AFFECTNET7)
    assert emotion["state_topic"] == "motivnet/box-1/door/emotion"
    assert "json_attributes_topic" not in emotion  # HA would record every update it forces
    assert emotion["expire_after"] == EMOTION_EXPIRE
    assert emotion["availability_topic"] == "motivnet/box-1/availability"
    assert emotion["device"]["model"].startswith("student-int8.tflite")
    assert emotion["device"]["sw_version"] and emotion["origin"]["sw_version"]


def test_diagnostics_and_face_presence_per_camera():
    found = configs()
    diagnostic = {t: c for t, c in found.items() if c.get("entity_category") == "diagnostic"}
    names = {c["name"] for c in diagnostic.values()}
    assert {"frames per second", "p95 latency", "spool depth", "door faces in view",
            "yard faces in view"} == names
    assert all(c["state_class"] == "measurement" and c["unit_of_measurement"]
               for c in diagnostic.values())
    present = [c for t, c in found.items() if t.startswith("homeassistant/binary_sensor/")]
    assert sorted(c["state_topic"] for c in present) == ["motivnet/box-1/door/presence",
                                                         "motivnet/box-1/yard/presence"]


def test_the_schema_check_finds_what_ha_would_refuse():
    bad = {"unique_id": "x", "device_class": "enum", "state_class": "measurement",
           "device": {}, "origin": {}, "expire_after": 0}
    errors = schema_errors("homeassistant/sensor/x/config", bad)
    assert len(errors) == 6, errors


def test_valence_and_arousal_sensors_when_the_model_predicts_them():
    plain = configs()
    assert not any("valence" in c["name"] for c in plain.values())
    msgs = discovery_messages("homeassistant", "motivnet", "box-1", ["door"], list(AFFECTNET7),
                              "m.onnx", 10.0, ("valence", "arousal"))
    found = {m.topic: json.loads(m.payload) for m in msgs}
    assert [e for t, c in found.items() for e in schema_errors(t, c)] == []
    valence = found["homeassistant/sensor/motivnet_box_1_door_valence/config"]
    assert valence["value_template"] == "{{ value_json.valence['door'] }}"
    assert valence["state_class"] == "measurement" and "entity_category" not in valence


def test_each_camera_has_a_switch_and_where_images_are_allowed_a_snapshot_button():
    """The switch pauses the camera on its command topic and reads its retained state; the
    button and the image it fills are offered only where the config allows images; the event
    entity reads the track events."""
    from motivnet_edge.edge.controls import ORDERS

    found = configs()
    switch = found["homeassistant/switch/motivnet_box_1_door_detect/config"]
    assert switch["command_topic"] == "motivnet/box-1/door/detect/set"
    assert switch["state_topic"] == "motivnet/box-1/door/detect"
    assert (switch["payload_on"], switch["payload_off"]) == ORDERS["detect"]
    button = found["homeassistant/button/motivnet_box_1_door_snapshot/config"]
    assert button["command_topic"] == "motivnet/box-1/door/snapshot/set"
    assert (button["payload_press"],) == ORDERS["snapshot"]
    image = found["homeassistant/image/motivnet_box_1_door_image/config"]
    assert image["image_topic"] == "motivnet/box-1/door/image"
    event = found["homeassistant/event/motivnet_box_1_door_events/config"]
    assert event["state_topic"] == "motivnet/box-1/door/events"
    assert event["event_types"] == ["new", "update", "end"]
    closed = configs(snapshots=False, events=False)
    platforms = {t.split("/")[1] for t in closed}
    assert "switch" in platforms and not platforms & {"button", "image", "event"}
