"""The benchmark's outputs: results.json and results.csv (one row per run), results.md (sorted
by latency, the full model first), pareto.png (accuracy against latency, the Pareto front
drawn, the full model marked), and the ``--gate`` verdict."""

from __future__ import annotations

import csv
from pathlib import Path

from motivnet_edge.benchmarks.host import describe
from motivnet_edge.benchmarks.pareto import pareto
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import atomic_path, write_json

GATE_KEYS = {"min_agreement": ("agreement_float", min), "min_agreement_full":
             ("agreement_full", min), "min_top1": ("top1", min), "max_p50_ms": ("p50_ms", max),
             "max_p95_ms": ("p95_ms", max)}
CSV_FIELDS = ("row", "kind", "name", "engine", "device", "precision", "status", "faces", "top1",
              "macro_recall", "agreement_full", "agreement_float", "kl_full", "p50_ms",
              "p95_ms", "p99_ms", "throughput_b8", "load_s", "threads", "speedup_full",
              "speedup_teacher", "accuracy_ratio_full", "bytes", "rss_mb", "valence_rmse",
              "valence_ccc", "arousal_rmse", "arousal_ccc")
VALUE_KEYS = ("valence_rmse", "valence_ccc", "arousal_rmse", "arousal_ccc")


def parse_gate(text: str) -> dict[str, float]:
    gate = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in GATE_KEYS:
            raise MotivnetError(f"--gate: unknown key {key!r}; known: {', '.join(GATE_KEYS)}")
        try:
            gate[key] = float(value)
        except ValueError as exc:
            raise MotivnetError(f"--gate {key}={value!r} is not a number") from exc
    return gate


def gate_failures(row: dict, gate: dict[str, float]) -> list[str]:
    """What a gated row misses (artifact rows only; a missing figure is not a failure)."""
    misses = []
    for key, limit in gate.items():
        field, kind = GATE_KEYS[key]
        value = row.get(field)
        if value is None:
            continue
        if (kind is min and value < limit) or (kind is max and value > limit):
            misses.append(f"{field} {value:.4g} {'<' if kind is min else '>'} {limit:g}")
    return misses


def assemble(rows, info: dict, source: str, faces: int, gate: dict | None, args: dict) -> dict:
    """Plain data for every output: rows with ratios to the full model, statuses, the gate."""
    out = [r.to_dict() for r in rows]
    speed_ref = next((r for r in out if r["kind"] == "full-model" and r.get("p50_ms")), None) \
        or next((r for r in out if r["kind"] == "teacher" and r.get("p50_ms")), None)
    teacher = next((r for r in out if r["kind"] == "teacher" and r.get("p50_ms")), None)
    acc_ref = next((r for r in out if r["kind"] in ("teacher", "full-model")
                    and r.get("top1") is not None), None)
    agr_ref = next((r for r in out if r["kind"] in ("teacher", "full-model")
                    and r.get("agreement_full") is not None), None)
    failed_gate = []
    for r in out:
        if r.get("p50_ms"):
            if speed_ref:
                r["speedup_full"] = round(speed_ref["p50_ms"] / r["p50_ms"], 2)
            if teacher:
                r["speedup_teacher"] = round(teacher["p50_ms"] / r["p50_ms"], 2)
        if acc_ref and r.get("top1") is not None and acc_ref["top1"]:
            r["accuracy_ratio_full"] = round(r["top1"] / acc_ref["top1"], 4)
        if r["speed_only"] and r["status"] == "ok":
            r["status"] = "speed only (random weights)"
        if gate and r["kind"] == "artifact" and r["status"] == "ok":
            misses = gate_failures(r, gate)
            if misses:
                r["status"] = "below gate: " + "; ".join(misses)
                failed_gate.append(r["row"])
    return {"host": info, "faces": faces, "faces_source": source,
            "speed_reference": speed_ref["row"] if speed_ref else None,
            "accuracy_reference": acc_ref["row"] if acc_ref else None,
            "agreement_reference": agr_ref["row"] if agr_ref else None,
            "command": args.get("command_line", ""), "rows": out,
            "gate": {"limits": gate or {}, "passed": not failed_gate, "failed": failed_gate}}


def ordered(rows: list[dict]) -> list[dict]:
    rank = {"full-model": 0, "teacher": 1}
    return sorted(rows, key=lambda r: (rank.get(r["kind"], 2),
                                       r.get("p50_ms") if r.get("p50_ms") else float("inf")))


def _f(v, fmt="{:.4f}") -> str:
    return "" if v is None else fmt.format(v)


def markdown(results: dict) -> str:
    lines = [f"Host: {describe(results['host'])}; {results['host']['os']}",
             f"Faces: {results['faces']} ({results['faces_source']}); latency per face at "
             f"batch 1 after warm-up, all rows interleaved; agreement and KL against "
             f"{results.get('agreement_reference') or 'no reference'}",
             "",
             "| row | status | top-1 | macro recall | agr. full | agr. FP32 twin | KL full | "
             "p50 ms (spread) | p95 | p99 | b8 faces/s | load s | x full | x teacher | "
             "acc. / full | MB | RSS MB |",
             "|" + "---|" * 17]
    for r in ordered(results["rows"]):
        spread = r.get("p50_spread_ms")
        p50 = "" if r.get("p50_ms") is None else \
            f"{r['p50_ms']:.3g} ({spread[0]:.3g}-{spread[1]:.3g})"
        lines.append("| " + " | ".join([
            r["row"], r["status"], _f(r.get("top1")), _f(r.get("macro_recall")),
            _f(r.get("agreement_full")), _f(r.get("agreement_float")), _f(r.get("kl_full")),
            p50, _f(r.get("p95_ms"), "{:.3g}"), _f(r.get("p99_ms"), "{:.3g}"),
            _f(r.get("throughput_b8"), "{:.0f}"), _f(r.get("load_s"), "{:.2f}"),
            _f(r.get("speedup_full"), "{:g}"), _f(r.get("speedup_teacher"), "{:g}"),
            _f(r.get("accuracy_ratio_full"), "{:.3f}"),
            _f(None if r.get("bytes") is None else r["bytes"] / 1e6, "{:.2f}"),
            _f(r.get("rss_mb"), "{:.0f}")]) + " |")
    lines += _values_table(results)
    gate = results["gate"]
    if gate["limits"]:
        lines.append(f"\nGate {gate['limits']}: " + ("passed" if gate["passed"] else
                                                      f"FAILED by {', '.join(gate['failed'])}"))
    if "device" in results:
        from motivnet_edge.benchmarks.device_rows import markdown as device_markdown

        lines += ["", device_markdown(results["device"])]
    if results.get("detectors"):
        from motivnet_edge.benchmarks.detectors import markdown as detector_markdown

        lines += ["", detector_markdown(results["detectors"])]
    return "\n".join(lines)


def _values_table(results: dict) -> list[str]:
    """Valence and arousal against the reference, for the rows that give both."""
    rows = [r for r in ordered(results["rows"]) if r.get("valence_rmse") is not None
            or r.get("arousal_rmse") is not None]
    if not rows:
        return []
    return ["", f"Valence and arousal against {results.get('agreement_reference')}:", "",
            "| row | valence RMSE | valence CCC | arousal RMSE | arousal CCC |",
            "|---|---|---|---|---|",
            *("| " + " | ".join([r["row"], *(_f(r.get(k)) for k in VALUE_KEYS)]) + " |"
              for r in rows)]


def write(results: dict, out: Path) -> None:
    out = Path(out)
    write_json(out / "results.json", results)
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(results["rows"])
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(markdown(results) + "\n")
    pareto(results, out / "pareto.png")
