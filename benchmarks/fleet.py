"""Benchmarks across a fleet: each device publishes its results, retained, under
``<prefix>/bench/<device>``; ``motivnet-edge bench collect`` gathers them into one table and
one plot, a column block per device. Same broker settings (TLS, credentials) as the daemon,
from ``--mqtt-config``."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from motivnet_edge.benchmarks.figures import pyplot, save
from motivnet_edge.benchmarks.pareto import pareto_front
from motivnet_edge.benchmarks.report import ordered
from motivnet_edge.edge.config import MqttConfig, load_config
from motivnet_edge.edge.mqtt import make_client
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path, write_json

BLOCK = ("p50_ms", "top1", "agreement_float", "status")  # per device, in the fleet table


def broker_config(url: str, config: Path | None) -> MqttConfig:
    """The broker of ``mqtt://host[:port]`` (``mqtts://`` default port 8883) with the prefix,
    credentials and TLS of a daemon config."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise MotivnetError(f"broker {url!r} is not mqtt://host[:port]")
    cfg = load_config(config).mqtt if config else MqttConfig()
    cfg.host = parsed.hostname
    cfg.port = parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)
    return cfg


def topic(cfg: MqttConfig, device: str = "+") -> str:
    return f"{cfg.prefix}/bench/{device}"


def _connect(cfg: MqttConfig, client) -> None:
    try:
        client.connect(cfg.host, cfg.port, keepalive=30)
    except OSError as exc:
        raise MotivnetError(f"cannot reach the MQTT broker {cfg.host}:{cfg.port}: {exc}") \
            from exc


def publish(results: dict, args) -> None:
    cfg = broker_config(args.publish, args.mqtt_config)
    device = args.device_name or socket.gethostname()
    client = make_client(cfg, f"{cfg.prefix}-bench-{device}")
    _connect(cfg, client)
    client.loop_start()
    info = client.publish(topic(cfg, device), json.dumps({"device": device, **results}),
                          qos=1, retain=True)
    info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    if not info.is_published():
        raise MotivnetError(f"the broker {cfg.host}:{cfg.port} did not take the results")
    print(f"published to {topic(cfg, device)} on {cfg.host}:{cfg.port} (retained)")


def gather(cfg: MqttConfig, wait: float) -> dict[str, dict]:
    """Every device's retained results: device -> results."""
    got: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        with lock:
            got[msg.topic.rsplit("/", 1)[-1]] = data

    client = make_client(cfg, "")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic(cfg), qos=1)
    client.on_message = on_message
    _connect(cfg, client)
    client.loop_start()
    time.sleep(wait)
    client.disconnect()
    client.loop_stop()
    return got


def fleet_table(by_device: dict[str, dict]) -> tuple[list[str], list[dict]]:
    """Rows merged by name across devices: one column block (p50, top-1, agreement with float,
    status) per device."""
    devices = sorted(by_device)
    merged: dict[str, dict] = {}
    for device in devices:
        for r in ordered(by_device[device]["rows"]):
            key = f"{r['name']} [{r['engine']}/{r['precision']}]"
            entry = merged.setdefault(key, {"row": key, "kind": r["kind"]})
            entry[device] = {k: r.get(k) for k in BLOCK}
    return devices, list(merged.values())


def markdown(devices: list[str], rows: list[dict], by_device: dict[str, dict]) -> str:
    from motivnet_edge.benchmarks.host import describe

    lines = [f"- **{d}**: {describe(by_device[d]['host'])}; {by_device[d]['faces']} faces "
             f"({by_device[d]['faces_source']})" for d in devices]
    head = "| row | " + " | ".join(f"{d} p50 ms | {d} top-1 | {d} agr. FP32 twin | {d} status"
                                    for d in devices) + " |"
    lines += ["", head, "|" + "---|" * (1 + 4 * len(devices))]
    for r in rows:
        cells = [r["row"]]
        for d in devices:
            b = r.get(d, {})
            cells += ["" if b.get("p50_ms") is None else f"{b['p50_ms']:.3g}",
                      "" if b.get("top1") is None else f"{b['top1']:.4f}",
                      "" if b.get("agreement_float") is None else f"{b['agreement_float']:.4f}",
                      b.get("status", "not run")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(by_device: dict[str, dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for device, res in sorted(by_device.items()):
        pts = [(r["p50_ms"], r["top1"] if r.get("top1") is not None else r.get("agreement_full"))
               for r in res["rows"] if r.get("p50_ms")]
        pts = [(x, y) for x, y in pts if y is not None]
        if not pts:
            continue
        line = ax.scatter(*zip(*pts, strict=True), s=25, label=device)
        front = pareto_front(pts)
        ax.step(*zip(*front, strict=True), where="post", lw=1, alpha=0.6,
                c=line.get_facecolor()[0])
    ax.set_xscale("log")
    ax.set_xlabel("per-face latency, batch 1, p50 (ms, log scale)")
    ax.set_ylabel("top-1 accuracy (or agreement with the full model)")
    ax.legend(fontsize=8)
    ax.set_title("motivnet-edge across devices (lines: each device's Pareto front)", fontsize=9)
    save(fig, path, bbox_inches="tight")


def collect(args) -> int:
    if not args.broker:
        raise MotivnetError("bench collect needs --broker mqtt://host[:port]")
    cfg = broker_config(args.broker, args.mqtt_config)
    by_device = gather(cfg, args.wait)
    if not by_device:
        raise MotivnetError(f"no results under {topic(cfg)} on {cfg.host}:{cfg.port}")
    devices, rows = fleet_table(by_device)
    out = Path(args.out)
    write_json(out / "fleet.json", {"devices": by_device, "rows": rows})
    with atomic_path(out / "fleet.md") as tmp:
        tmp.write_text(markdown(devices, rows, by_device) + "\n")
    plot(by_device, out / "fleet.png")
    print(markdown(devices, rows, by_device))
    print(f"\n{len(devices)} devices; wrote {out}/fleet.json, fleet.md, fleet.png")
    return 0
