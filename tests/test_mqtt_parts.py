"""The spool and the message builders, without a broker: order, bounds, persistence, discovery."""

import json

import numpy as np

from motivnet_edge.edge.messages import Message, faces_message
from motivnet_edge.edge.mqtt import Spool
from motivnet_edge.edge.tracker import Tracker, TrackerSettings


def test_spool_keeps_order_drops_oldest_when_full_and_counts():
    spool = Spool(max_messages=3)
    for i in range(5):
        spool.put(Message("t", str(i).encode()))
    assert len(spool) == 3 and spool.dropped == 2
    got = []
    while (head := spool.peek()) is not None:
        got.append(head[1].payload)
        spool.remove(head[0])
    assert got == [b"2", b"3", b"4"]


def test_disk_spool_and_seq_survive_a_restart(tmp_path):
    path = str(tmp_path / "spool.db")
    spool = Spool(100, path)
    assert [spool.counter("seq/door") for _ in range(3)] == [1, 2, 3]
    spool.put(Message("a", b"1", retain=True))
    spool.put(Message("b", b"2"))
    spool.close()
    again = Spool(100, path)
    assert again.counter("seq/door") == 4  # never reused
    first = again.peek()[1]
    assert (first.topic, first.payload, first.retain) == ("a", b"1", True)
    assert len(again) == 2


def test_faces_message_schema():
    msg = faces_message("motivnet", "box", "door", 7, 1.23456, 99,
                        [{"track": 1, "box": [1, 2, 3, 4], "label": "Happiness", "score": 0.9,
                          "probs": {"Happiness": 0.9}}], {"infer": 1.234}, "run1")
    data = json.loads(msg.payload)
    assert msg.topic == "motivnet/box/door/faces" and msg.qos == 1 and not msg.retain
    assert data["seq"] == 7 and data["frame"] == 99 and data["timings_ms"]["infer"] == 1.23


def test_tracker_keeps_identity_and_smooths():
    tr = Tracker(TrackerSettings(iou_threshold=0.3, smoothing=0.5, ttl=1.0))
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    (t1,) = tr.update([(10, 10, 50, 50)], a, now=0.0)
    (t2,) = tr.update([(12, 11, 50, 50)], b, now=0.1)
    assert t1.id == t2.id and np.allclose(t2.probs, [0.5, 0.5])
    (t3,) = tr.update([(300, 300, 50, 50)], b, now=0.2)
    assert t3.id != t1.id
    (t4,) = tr.update([(12, 11, 50, 50)], a, now=5.0)  # the old track expired
    assert t4.id not in (t1.id, t3.id)


def test_results_left_in_the_spool_are_counted_apart_from_emotion_states():
    from motivnet_edge.edge.messages import emotion_message

    spool = Spool(100)
    for seq in (1, 2):
        spool.put(faces_message("m", "dev", "door", seq, 0.0, seq, [], {}, "run"))
        spool.put(emotion_message("m", "dev", "door", "Happiness", 0.9, 0.0))
    assert len(spool) == 4
    assert spool.count("/faces") == 2


def test_a_broker_that_takes_tcp_and_never_answers_is_counted_and_named(caplog):
    import logging
    import socket
    import threading
    import time

    from motivnet_edge.edge.config import MqttConfig, SpoolConfig
    from motivnet_edge.edge.mqtt import MqttPublisher

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(8)],
                     daemon=True).start()
    cfg = MqttConfig(host="127.0.0.1", port=server.getsockname()[1], flush_timeout=1.0,
                     spool=SpoolConfig(max_messages=10))
    caplog.set_level(logging.WARNING)
    pub = MqttPublisher(cfg, "box", "motivnet-silent")
    pub.silent_after = 2.0
    pub.start()
    deadline = time.monotonic() + 20
    while "no CONNACK" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    pub.stop(flush_timeout=0.5)
    server.close()
    assert pub.connect_failures >= 1 and "no CONNACK within" in caplog.text, caplog.text
