"""Why a broker cannot be used: a probe that names the cause paho's reconnect loop keeps to
itself (it reports a failed connect with no reason, and a broker that accepts TCP but never
answers with nothing at all).

The probe opens its own connection with the config's settings: TCP, then TLS with the same CA,
client certificate and host check, then an MQTT CONNECT, and says which step failed and how
(connection refused, certificate verify failed and why, no CONNACK within N s, a TLS port
spoken to in plain MQTT, the broker's refusal code).
"""

from __future__ import annotations

import socket
import ssl

from motivnet_edge.edge.config import MqttConfig

# MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, keepalive 10 s, client id
# "motivnet-probe"; no credentials (a refusal for them still proves the broker answers)
_CLIENT_ID = b"motivnet-probe"
_CONNECT = (bytes([0x10, 10 + 2 + len(_CLIENT_ID)]) + b"\x00\x04MQTT\x04\x02\x00\x0a"
            + len(_CLIENT_ID).to_bytes(2, "big") + _CLIENT_ID)
_CONNACK_CODES = {1: "unacceptable protocol version", 2: "client id rejected",
                  3: "server unavailable", 4: "bad user name or password",
                  5: "not authorised"}


def _tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    tls = cfg.tls
    ctx = ssl.create_default_context(cafile=tls.ca) if tls.ca else ssl.create_default_context()
    if tls.cert:
        ctx.load_cert_chain(tls.cert, tls.key)
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


def _mqtt_answer(sock: socket.socket, timeout: float, tls: bool) -> str:
    sock.settimeout(timeout)
    try:
        sock.sendall(_CONNECT)
        head = sock.recv(4)
    except TimeoutError:
        return (f"TCP{' and TLS' if tls else ''} connected, but no CONNACK within "
                f"{timeout:g} s: not an MQTT broker, or one that does not answer")
    except OSError as exc:
        hint = "" if tls else "; a TLS port resets plain MQTT: then set mqtt.tls"
        return f"the broker reset the connection after CONNECT ({exc.strerror or exc}{hint})"
    if not head:
        hint = "" if tls else " (a TLS port? then set mqtt.tls)"
        return f"the broker closed the connection after CONNECT{hint}"
    if head[0] in (0x15, 0x16):  # a TLS alert or handshake record
        return "the port speaks TLS and the config does not: set mqtt.tls"
    if head[0] != 0x20 or len(head) < 4:
        return f"the answer to CONNECT is not MQTT (first bytes {head.hex()})"
    code = head[3]
    return "the broker answers MQTT" if code == 0 else \
        f"the broker refused: {_CONNACK_CODES.get(code, f'code {code}')}"


def diagnose(cfg: MqttConfig, timeout: float = 3.0) -> str:
    """One line on what happens when this config reaches for its broker."""
    try:
        raw = socket.create_connection((cfg.host, cfg.port), timeout=timeout)
    except TimeoutError:
        return f"no TCP answer from {cfg.host}:{cfg.port} within {timeout:g} s"
    except OSError as exc:
        return f"TCP to {cfg.host}:{cfg.port}: {exc.strerror or exc}"
    with raw:
        if cfg.tls is None:
            return _mqtt_answer(raw, timeout, tls=False)
        try:
            ctx = _tls_context(cfg)
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=cfg.host) as sock:
                return _mqtt_answer(sock, timeout, tls=True)
        except ssl.SSLCertVerificationError as exc:
            return f"TLS: certificate verify failed: {exc.verify_message}"
        except TimeoutError:
            return f"TLS: no handshake within {timeout:g} s (not a TLS port?)"
        except ssl.SSLError as exc:
            return f"TLS handshake failed: {exc.reason or exc} (not a TLS port?)"
        except OSError as exc:
            return (f"TLS: {exc.strerror or exc} during the handshake (a plain MQTT port? then "
                    f"leave mqtt.tls out)")
