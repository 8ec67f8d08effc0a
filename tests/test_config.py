"""The daemon's config: every path relative to the config file, footage that must exist, the
disk spool in the state directory by default."""

import os
import re

import pytest
import yaml

from motivnet_edge.edge.config import load_config
from motivnet_edge.targets.errors import MotivnetError
from tests.helpers import synthetic_video


def write(folder, cfg: dict):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_every_path_resolves_against_the_config_folder_not_the_working_directory(
        tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    (conf / "tls").mkdir(parents=True)
    for name in ("ca.pem", "cam.pem", "cam.key"):  # TLS files must exist at load
        (conf / "tls" / name).touch()
    synthetic_video(conf / "clip.avi", 2)
    path = write(conf, {
        "model": {"artifact": "out/student-int8.onnx"},
        "detector": {"model": "yunet.onnx"},
        "cameras": [{"name": "door", "source": "clip.avi"}, {"name": "usb", "source": 0},
                    {"name": "dev", "source": "/dev/video7"},
                    {"name": "ip", "source": "rtsp://10.0.0.5/stream"}],
        "mqtt": {"password_file": "secrets/pw", "spool": {"path": "state/spool.db"},
                 "tls": {"ca": "tls/ca.pem", "cert": "tls/cam.pem", "key": "tls/cam.key"}}})
    monkeypatch.chdir("/")  # where systemd starts the daemon
    cfg = load_config(path, env={})
    assert cfg.model.artifact == str(conf / "out/student-int8.onnx")
    assert cfg.detector.model == str(conf / "yunet.onnx")
    assert cfg.cameras[0].source == str(conf / "clip.avi")
    assert [c.source for c in cfg.cameras[1:]] == [0, "/dev/video7", "rtsp://10.0.0.5/stream"]
    assert cfg.mqtt.password_file == str(conf / "secrets/pw")
    assert cfg.mqtt.spool.path == str(conf / "state/spool.db")
    assert (cfg.mqtt.tls.ca, cfg.mqtt.tls.cert, cfg.mqtt.tls.key) == tuple(
        str(conf / "tls" / n) for n in ("ca.pem", "cam.pem", "cam.key"))


def test_a_missing_video_file_is_an_error_at_start_not_a_camera_to_retry(tmp_path):
    path = write(tmp_path, {"model": {"artifact": "a.onnx"},
                            "cameras": [{"name": "door", "source": "clpi.avi"}]})
    with pytest.raises(MotivnetError, match=r"cameras\[0\]\.source: .*clpi\.avi does not exist"):
        load_config(path, env={})


def test_the_state_directory_holds_the_disk_spool_by_default(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    path = write(tmp_path / "etc", {"model": {"artifact": "a.onnx"}, "cameras": [
        {"name": "usb", "source": 0}]})
    assert load_config(path, env={}).mqtt.spool.path is None  # memory: nowhere to keep it
    cfg = load_config(path, env={"STATE_DIRECTORY": str(state)})  # systemd's StateDirectory=
    assert cfg.mqtt.spool.path == str(state / "spool.db")
    os.chmod(state, 0o500)
    try:
        if not os.access(state, os.W_OK):  # root writes anyway
            assert load_config(path, env={"STATE_DIRECTORY": str(state)}).mqtt.spool.path \
                is None
    finally:
        os.chmod(state, 0o700)


def test_the_cache_directory_holds_the_engine_caches_by_default(tmp_path):
    """systemd's CacheDirectory= (as $CACHE_DIRECTORY) is where TensorRT and OpenVINO keep
    their compiled models unless model.cache_dir says otherwise."""
    path = write(tmp_path, {"cameras": [{"name": "usb", "source": 0}]})
    assert load_config(path, env={}).model.cache_dir is None
    cache = "/var/cache/motivnet-edge"
    assert load_config(path, env={"CACHE_DIRECTORY": cache}).model.cache_dir == cache
    own = write(tmp_path / "own", {"model": {"cache_dir": "engines"},
                                   "cameras": [{"name": "usb", "source": 0}]})
    assert load_config(own, env={"CACHE_DIRECTORY": cache}).model.cache_dir == \
        str((tmp_path / "own" / "engines").resolve())


def test_a_config_every_user_may_change_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("cameras: [{name: door, source: 0}]\n")
    os.chmod(path, 0o666)
    with pytest.raises(MotivnetError, match="writable by every user .*chmod o-w"):
        load_config(path, env={})
    os.chmod(path, 0o644)
    assert load_config(path, env={}).cameras[0].name == "door"


def test_a_password_file_every_user_may_read_is_warned_about(tmp_path, caplog):
    from motivnet_edge.edge.config import MqttConfig
    from motivnet_edge.edge.mqtt import mqtt_password

    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o600)
    with caplog.at_level("WARNING"):
        assert mqtt_password(MqttConfig(password_file=str(secret)), env={}) == "s3cret"
    assert not caplog.records
    os.chmod(secret, 0o644)
    with caplog.at_level("WARNING"):
        assert mqtt_password(MqttConfig(password_file=str(secret)), env={}) == "s3cret"
    assert "readable by every user" in caplog.text and "s3cret" not in caplog.text


@pytest.mark.parametrize("text, env, named", [
    (b"device: caf\xe9\n", {}, "not UTF-8"),
    (b"device: 2024-02-30\n", {}, "not valid YAML"),
    (b"device: a\n", {"MOTIVNET_MQTT_PORT": "eighty"}, "MOTIVNET_MQTT_PORT 'eighty'"),
    (b"state_dir: \"/var/lib/x\\0y\"\n", {}, "state_dir"),
    (b"mqtt: {tls: {ca: nowhere-ca.pem}}\n", {}, "mqtt.tls.ca"),
    (b"state_dir: ~nosuchuser-motivnet/state\n", {}, "state_dir"),
], ids=["latin1", "impossible-date", "port-env", "nul-byte", "missing-ca", "no-such-user"])
def test_bad_config_content_is_named_not_a_traceback(tmp_path, text, env, named):
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    with pytest.raises(MotivnetError, match=re.escape(named)):
        load_config(path, env=env)
