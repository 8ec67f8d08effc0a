"""The MQTT client: paho-mqtt 2.x, a retained last will, ``online`` on every connect, and a
bounded spool that delivers results in order once the broker is back.

Results are never handed to paho while disconnected (paho's own queue lives only in memory).
They wait in a :class:`Spool` (SQLite: in memory, or a file that survives a restart); a sender
thread publishes the oldest at QoS 1 and deletes it only after the broker acknowledged it.
When the spool is full the oldest are dropped and counted. paho reconnects with backoff.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from motivnet_edge.edge.broker_check import diagnose
from motivnet_edge.edge.config import MqttConfig
from motivnet_edge.edge.messages import Message, availability_message, faces_message
from motivnet_edge.targets.errors import MotivnetError

log = logging.getLogger(__name__)
RESULTS_SUFFIX = "/faces"  # the topic of results, as counted when some are left at exit


class Spool:
    """Bounded FIFO of messages in SQLite; ``path=None`` keeps it in memory."""

    def __init__(self, max_messages: int, path: str | None = None) -> None:
        self.max = max_messages
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path or ":memory:", check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self.db.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY "
                        "AUTOINCREMENT, topic TEXT, payload BLOB, qos INT, retain INT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INT)")
        self.lock = threading.Lock()
        self.dropped = 0

    def put(self, msg: Message) -> None:
        with self.lock:
            self.db.execute("INSERT INTO spool (topic, payload, qos, retain) VALUES (?,?,?,?)",
                            (msg.topic, msg.payload, msg.qos, int(msg.retain)))
            over = len(self) - self.max
            if over > 0:
                self.db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool "
                                "ORDER BY id LIMIT ?)", (over,))
                self.dropped += over
                log.warning("spool full (%d): dropped the %d oldest", self.max, over)

    def peek(self) -> tuple[int, Message] | None:
        with self.lock:
            row = self.db.execute("SELECT id, topic, payload, qos, retain FROM spool "
                                  "ORDER BY id LIMIT 1").fetchone()
        return None if row is None else (row[0], Message(row[1], bytes(row[2]), row[3],
                                                         bool(row[4])))

    def remove(self, msg_id: int) -> None:
        with self.lock:
            self.db.execute("DELETE FROM spool WHERE id = ?", (msg_id,))

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def count(self, topic_suffix: str) -> int:
        """Messages waiting whose topic ends with ``topic_suffix`` (``/faces``: results)."""
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM spool WHERE topic LIKE ?",
                                   (f"%{topic_suffix}",)).fetchone()[0]

    def counter(self, key: str) -> int:
        """A persistent counter (per-camera ``seq``): the next value, never reused."""
        with self.lock:
            row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
            value = (row[0] if row else 0) + 1
            self.db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                            (key, value))
        return value

    def close(self) -> None:
        with self.lock:
            self.db.close()


def mqtt_password(cfg: MqttConfig, env: dict | None = None) -> str | None:
    """The broker password from MOTIVNET_MQTT_PASSWORD or ``password_file``; never logged."""
    env = os.environ if env is None else env
    if env.get("MOTIVNET_MQTT_PASSWORD"):
        return env["MOTIVNET_MQTT_PASSWORD"]
    if cfg.password_file:
        path = Path(cfg.password_file)
        if not path.is_file():
            raise MotivnetError(f"config mqtt.password_file: {path} does not exist")
        mode = path.stat().st_mode & 0o777
        if mode & 0o004:
            log.warning("mqtt.password_file %s is readable by every user (mode %04o): "
                        "chmod o-r %s", path, mode, path)
        return path.read_text().strip()
    return None


def make_client(cfg: MqttConfig, client_id: str = "", clean_session: bool = True
                ) -> mqtt.Client:
    """A paho 2.x client with the config's credentials and TLS (the password from the
    environment or its file, never the config)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session)
    if cfg.username:
        client.username_pw_set(cfg.username, mqtt_password(cfg))
    if cfg.tls is not None:
        client.tls_set(ca_certs=cfg.tls.ca, certfile=cfg.tls.cert, keyfile=cfg.tls.key,
                       cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.tls.insecure)
        if cfg.tls.insecure:
            log.warning("mqtt.tls.insecure is true: the broker's certificate is still checked "
                        "against the CA, but not its host name, so any holder of a certificate "
                        "from that CA can pose as %s", cfg.host)
    return client


class MqttPublisher:
    """Connects in the background, announces availability and drains the spool in order."""

    def __init__(self, cfg: MqttConfig, device: str, client_id: str) -> None:
        self.cfg, self.device = cfg, device
        self.spool = Spool(cfg.spool.max_messages, cfg.spool.path)
        self.reconnects = 0
        self.connect_failures = 0
        self.connected = threading.Event()
        self._stopping = False
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self.client = make_client(cfg, client_id, clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.connect_timeout = min(5.0, max(1.0, cfg.flush_timeout))
        will = availability_message(cfg.prefix, device, online=False)
        self.client.will_set(will.topic, will.payload, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self._sender = threading.Thread(target=self._drain, name="mqtt-sender", daemon=True)
        self._fail_lock = threading.Lock()
        self._waiting_since = time.monotonic()
        self.connect_attempts = 0
        self._attempt_failed = False  # this attempt's failure is counted already
        self.client.on_pre_connect = self._on_pre_connect
        # seconds without a connection before a silent broker counts as a failed connect
        self.silent_after = 2 * self.client.connect_timeout + 5.0
        self._announce: list[Message] = []
        self._listen: tuple[list[str], object] = ([], None)
        self.client.on_message = self._on_message

    def listen(self, topics: list[str], callback) -> None:
        """Subscribe to ``topics`` (QoS 1) on every connect; ``callback(topic, payload)`` gets
        each message on the client's thread and must not raise."""
        self._listen = (list(topics), callback)
        if topics and self.connected.is_set():
            self.client.subscribe([(name, 1) for name in topics])

    def _on_message(self, client, userdata, msg) -> None:
        topics, callback = self._listen
        if callback is not None:
            try:
                callback(msg.topic, msg.payload)
            except Exception:  # an order must never take the client's thread down
                log.exception("an order on %s could not be handled", msg.topic)

    def announce_on_connect(self, messages: list[Message]) -> None:
        """Retained messages (discovery configs) sent on every connect."""
        self._announce = list(messages)

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()
        self._sender.start()

    def _connect_failed(self, why: str | None = None) -> None:
        """Logged on the first failure, then at 2, 4, 8, ... failures: once, then at a backoff.
        Without ``why`` (paho gives none), a probe of the broker names the cause."""
        with self._fail_lock:
            self.connect_failures += 1
            n = self.connect_failures
            self._waiting_since = time.monotonic()
            self._attempt_failed = True
        if n & (n - 1) == 0:
            why = why or diagnose(self.cfg, timeout=min(3.0, self.client.connect_timeout))
            log.warning("cannot reach the MQTT broker %s:%d (%s; %d attempts so far); results "
                        "wait in the spool", self.cfg.host, self.cfg.port, why, n)

    def _on_pre_connect(self, client, userdata) -> None:
        self.connect_attempts += 1
        self._attempt_failed = False

    def _on_connect_fail(self, client, userdata) -> None:
        self._connect_failed()

    def _check_silence(self) -> None:
        """A broker that takes the TCP connection and never answers gives paho no failure to
        report: count one when nothing has connected for a while."""
        if self.connected.is_set() or self._stopping:
            return
        if time.monotonic() - self._waiting_since > self.silent_after:
            self._connect_failed()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_failed(f"refused: {reason_code}")
            return
        online = availability_message(self.cfg.prefix, self.device, online=True)
        client.publish(online.topic, online.payload, qos=1, retain=True)
        for msg in self._announce:
            client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        if self._listen[0]:
            client.subscribe([(name, 1) for name in self._listen[0]])
        log.info("connected to %s:%d", self.cfg.host, self.cfg.port)
        self.connected.set()
        with self._wake:
            self._wake.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._stopping:
            log.info("disconnected from the broker")
        elif self.connected.is_set():
            self.reconnects += 1
            log.warning("lost the broker (%s); results wait in the spool", reason_code)
        elif not self._attempt_failed:  # closed before the broker accepted it (TLS, silence);
            self._connect_failed()  # a refusal was counted by _on_connect already
        self._waiting_since = time.monotonic()
        self.connected.clear()

    def publish_faces(self, camera: str, ts: float, frame: int, faces: list[dict],
                      timings: dict, run: str) -> int:
        """Queue one frame's faces under the camera's next ``seq`` (never reused; persisted
        with a disk spool); returns that ``seq``."""
        seq = self.spool.counter(f"seq/{camera}")
        self.publish(faces_message(self.cfg.prefix, self.device, camera, seq, ts, frame, faces,
                                   timings, run))
        return seq

    def publish(self, msg: Message) -> None:
        """Queue a result; it is delivered in order, at least once, when the broker is there."""
        self.spool.put(msg)
        with self._wake:
            self._wake.notify_all()

    def publish_now(self, msg: Message) -> None:
        """Fire-and-forget for what may be lost (stats) or is retained state."""
        if self.connected.is_set():
            self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)

    def _drain(self) -> None:
        while not self._stop.is_set():
            head = self.spool.peek() if self.connected.is_set() else None
            if head is None:
                self._check_silence()
                with self._wake:
                    self._wake.wait(timeout=0.5)
                continue
            msg_id, msg = head
            try:
                info = self.client.publish(msg.topic, msg.payload, qos=msg.qos,
                                           retain=msg.retain)
                info.wait_for_publish(timeout=5.0)
                delivered = info.is_published()
            except (RuntimeError, ValueError):  # not connected any more
                delivered = False
            if delivered:
                self.spool.remove(msg_id)
            else:
                time.sleep(0.2)

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the spool to empty; True when it did."""
        end = time.monotonic() + timeout
        while len(self.spool) and time.monotonic() < end:
            time.sleep(0.05)
        return len(self.spool) == 0

    def stop(self, flush_timeout: float = 5.0) -> int:
        """Flush what can be flushed, waiting at most ``flush_timeout`` s in all (for the
        broker too if it is away), publish ``offline``, disconnect cleanly. Returns the number
        of results lost: those left in a memory spool (a disk spool keeps them for the next
        start)."""
        end = time.monotonic() + flush_timeout
        flushed = self.flush(flush_timeout * 0.8)
        self._stopping = True
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self._sender.join(timeout=max(0.1, end - time.monotonic()))
        left = self.spool.count(RESULTS_SUFFIX)  # results; emotion states are retained ones
        if self.connected.is_set():
            off = availability_message(self.cfg.prefix, self.device, online=False)
            self.client.publish(off.topic, off.payload, qos=1, retain=True).wait_for_publish(
                max(0.1, min(2.0, end - time.monotonic())))
        self.client.disconnect()
        self.client.loop_stop()
        self.spool.close()
        if flushed or not left:
            return 0
        if self.cfg.spool.path:
            log.warning("%d results not delivered at exit: kept in %s, sent at the next start",
                        left, self.cfg.spool.path)
            return 0
        log.error("%d results LOST at exit: the broker %s:%d was not reachable within "
                  "%.0f s and the spool is in memory (set mqtt.spool.path or state_dir to keep "
                  "them)", left, self.cfg.host, self.cfg.port, flush_timeout)
        return left
