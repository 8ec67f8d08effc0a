"""The publisher against a real mosquitto that demands TLS with client certificates and a
password: results arrive; a wrong password is refused and never logged."""

import logging
import shutil
import ssl
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from motivnet_edge.edge.config import MqttConfig, SpoolConfig, TlsConfig
from motivnet_edge.edge.messages import Message
from motivnet_edge.edge.mqtt import MqttPublisher
from tests.conftest import Broker, mosquitto_path

pytestmark = pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("mosquitto_passwd") and mosquitto_path()),
    reason="needs openssl, mosquitto and mosquitto_passwd")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
                *(["-extfile", "san.ext"] if name == "server" else []), cwd=d)


@pytest.fixture
def tls_broker(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "cam", "s3cret-pw"],
                   check=True, capture_output=True)
    conf = (f"cafile {pki}/ca.pem\ncertfile {pki}/server.pem\nkeyfile {pki}/server.key\n"
            f"require_certificate true\npassword_file {passwd}\n")
    broker = Broker(tmp_path, listener_conf=conf, anonymous=False)
    broker.start()
    yield broker, pki
    broker.stop()


def tls_config(port, pki, **over) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, username="cam", prefix="motivnet",
                      tls=TlsConfig(ca=str(pki / "ca.pem"), cert=str(pki / "client.pem"),
                                    key=str(pki / "client.key")),
                      spool=SpoolConfig(max_messages=100), **over)


def subscriber(port, pki, got):
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-sub")
    sub.tls_set(ca_certs=str(pki / "ca.pem"), certfile=str(pki / "client.pem"),
                keyfile=str(pki / "client.key"), cert_reqs=ssl.CERT_REQUIRED)
    sub.username_pw_set("cam", "s3cret-pw")
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: (c.subscribe("motivnet/#", qos=1), ready.set())
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    assert ready.wait(10), "the subscriber could not connect over TLS"
    return sub


def test_results_arrive_over_tls_with_client_certificate_and_password(tls_broker, monkeypatch):
    broker, pki = tls_broker
    got: list = []
    sub = subscriber(broker.port, pki, got)
    monkeypatch.setenv("MOTIVNET_MQTT_PASSWORD", "s3cret-pw")
    pub = MqttPublisher(tls_config(broker.port, pki), "tlsbox", "motivnet-tlsbox-door")
    pub.start()
    pub.publish(Message("motivnet/tlsbox/door/faces", b'{"seq": 1}'))
    assert pub.flush(15.0)
    pub.stop()
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    sub.loop_stop()
    topics = [t for t, _ in got]
    assert ("motivnet/tlsbox/door/faces", b'{"seq": 1}') in got
    assert topics.count("motivnet/tlsbox/availability") >= 2  # online, then offline


def test_wrong_password_is_refused_and_never_logged(tls_broker, monkeypatch, caplog):
    broker, pki = tls_broker
    monkeypatch.setenv("MOTIVNET_MQTT_PASSWORD", "wrong-pw-123")
    caplog.set_level(logging.DEBUG)
    pub = MqttPublisher(tls_config(broker.port, pki), "tlsbox", "motivnet-tlsbox-yard")
    pub.start()
    pub.publish(Message("motivnet/tlsbox/yard/faces", b"{}"))
    assert not pub.connected.wait(4.0)
    assert len(pub.spool) == 1  # kept, not lost
    pub.stop(flush_timeout=0.5)
    assert "refused" in caplog.text
    # a refusal is one failed attempt, not also a second one when the broker then hangs up
    assert 1 <= pub.connect_failures <= pub.connect_attempts
    assert "wrong-pw-123" not in caplog.text


def failure_logged(cfg: MqttConfig, caplog, timeout: float = 20.0) -> str:
    """What the publisher logged about a broker it cannot use, once it counted a failure."""
    caplog.set_level(logging.WARNING)
    pub = MqttPublisher(cfg, "tlsbox", f"motivnet-probe-{cfg.port}")
    pub.start()
    deadline = time.monotonic() + timeout
    while "cannot reach the MQTT broker" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.1)
    pub.stop(flush_timeout=0.5)
    assert pub.connect_failures >= 1, caplog.text
    return caplog.text


def test_a_ca_that_did_not_sign_the_broker_is_named(tls_broker, tmp_path, monkeypatch, caplog):
    broker, pki = tls_broker
    other = tmp_path / "other-pki"
    other.mkdir()
    make_pki(other)
    monkeypatch.setenv("MOTIVNET_MQTT_PASSWORD", "s3cret-pw")
    cfg = tls_config(broker.port, pki)
    cfg.tls.ca = str(other / "ca.pem")
    text = failure_logged(cfg, caplog)
    assert "certificate verify failed" in text and ("issuer" in text or "self-signed" in text)


def test_a_certificate_for_another_host_is_named(tls_broker, monkeypatch, caplog):
    broker, pki = tls_broker  # the server's certificate names 127.0.0.1 only
    monkeypatch.setenv("MOTIVNET_MQTT_PASSWORD", "s3cret-pw")
    cfg = tls_config(broker.port, pki)
    cfg.host = "localhost"
    text = failure_logged(cfg, caplog)
    assert "certificate verify failed" in text and "mismatch" in text.lower(), text


def test_plain_mqtt_to_a_tls_port_is_named(tls_broker, monkeypatch, caplog):
    broker, pki = tls_broker
    cfg = tls_config(broker.port, pki)
    cfg.tls = None
    text = failure_logged(cfg, caplog)
    assert "TLS" in text, text


def test_insecure_tls_is_said_aloud_and_names_what_is_not_checked(tmp_path, caplog):
    from motivnet_edge.edge.mqtt import make_client

    make_pki(tmp_path)
    cfg = tls_config(1883, tmp_path)
    with caplog.at_level(logging.WARNING, logger="motivnet_edge"):
        make_client(cfg, "secure")
        assert not caplog.records  # checked in full: nothing to say
        cfg.tls.insecure = True
        make_client(cfg, "insecure")
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "mqtt.tls.insecure" in record.getMessage()
    assert "host name" in record.getMessage() and "127.0.0.1" in record.getMessage()
