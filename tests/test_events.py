"""Per-track events (new, update, end), a camera's presence, and the faces topic written every
frame, on change, or at most N per second: in the bookkeeping and in a daemon against a real
broker."""

import json

import pytest

from motivnet_edge.edge.events import TrackEvents
from tests.helpers import Subscriber, synthetic_video
from tests.test_daemon import start_daemon, write_config


def face(track, label, happy):
    """A tracked face whose probabilities are ``happy`` for Happiness, the rest for other."""
    probs = {"Happiness": happy, "other": round(1 - happy, 4)}
    return {"track": track, "box": [0, 0, 10, 10], "label": label, "score": probs[label],
            "probs": probs}


def test_a_track_is_new_then_updated_then_ends_with_its_summary():
    ev = TrackEvents(ttl=1.0)
    assert [e["type"] for e in ev.update("door", [face(1, "Happiness", 0.8)], 0.0)] == ["new"]
    assert ev.update("door", [face(1, "Happiness", 0.6)], 0.5) == []
    (upd,) = ev.update("door", [face(1, "other", 0.2)], 1.0)
    assert upd["type"] == "update" and upd["previous"] == "Happiness"
    assert ev.in_view("door") == 1
    assert ev.update("door", [], 1.5) == []  # within the ttl: still there
    (end,) = ev.update("door", [], 2.5)
    assert end["type"] == "end" and end["duration"] == 1.0 and end["frames"] == 3
    assert end["mean_probs"]["Happiness"] == round((0.8 + 0.6 + 0.2) / 3, 4)
    assert end["label"] == "Happiness"  # dominant over its life, not its last label
    assert ev.in_view("door") == 0


def test_tracks_left_at_a_stop_end_there():
    ev = TrackEvents(ttl=1.0)
    ev.update("door", [face(1, "Happiness", 0.9)], 0.0)
    ev.update("yard", [face(7, "other", 0.1)], 0.0)
    ends = ev.end_all(0.5)
    assert sorted((cam, e["track"], e["type"]) for cam, e in ends) == [
        ("door", 1, "end"), ("yard", 7, "end")]
    assert not ev.tracks


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["change", 2.0])
def test_the_daemon_writes_faces_as_asked_and_publishes_track_events(tmp_path, broker, mode):
    video = synthetic_video(tmp_path / "v.avi", 40)  # the same faces, barely moving
    sub = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, video, camera={"faces": mode})
    proc = start_daemon(config, "--max-frames", "40")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    faces = [json.loads(p) for p in sub.wait_for("/door/faces", 1)]
    events = [json.loads(p) for p in sub.wait_for("/door/events", 2)]
    presence = sub.wait_for("/door/presence", 1)
    sub.close()
    assert 1 <= len(faces) < 40
    if mode == "change":  # a message only when the tracks or their labels change
        sigs = [tuple(sorted((f["track"], f["label"]) for f in m["faces"])) for m in faces]
        assert all(a != b for a, b in zip(sigs, sigs[1:], strict=False))
    else:
        gaps = [b["ts"] - a["ts"] for a, b in zip(faces, faces[1:], strict=False)]
        assert all(g >= 0.5 - 1e-3 for g in gaps), gaps
    seqs = [m["seq"] for m in faces]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap for the skipped frames
    kinds = [e["type"] for e in events]
    assert kinds[0] == "new" and kinds[-1] == "end"
    new_tracks = {e["track"] for e in events if e["type"] == "new"}
    assert new_tracks == {e["track"] for e in events if e["type"] == "end"}
    end = events[-1]
    assert end["duration"] > 0 and abs(sum(end["mean_probs"].values()) - 1) < 0.02
    assert presence[0] == b"ON"
