"""Run inside rknn-toolkit2's own environment (numpy 1.26, onnx 1.18: it cannot share the compress
environment), as a script: ``python rknn_worker.py REQUEST.json``. It imports nothing of
motivnet_edge. One request builds one RKNN file from an ONNX file and runs it in the toolkit's
simulator on the given inputs, in the same session (the simulator runs only a model built in
it: a file loaded with ``load_rknn`` needs a board).

The request (JSON): ``source`` ONNX path; ``out`` the .rknn path; ``platform`` (rk3588, ...);
``quantize`` (False for a graph that carries its own Quantize/DequantizeLinear pairs);
``algorithm`` (normal, mmse, kl_divergence); ``calibration`` an .npy of NCHW inputs (when
quantising); ``inputs`` an .npy of NCHW inputs to simulate; ``rows`` the .npy the simulated
outputs go to (one row per input, outputs side by side); ``torch_site`` the folder holding
the compress environment's torch, appended to the path before the toolkit is imported (it
imports torch when it loads). The last line printed is a JSON object: ``{"ok": true, ...}``
or ``{"ok": false, "error": "..."}`` (exit status 1).
"""

import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _check(step: str, code: int, log: io.StringIO) -> None:
    if code != 0:
        tail = " | ".join(line for line in log.getvalue().splitlines()[-6:] if line.strip())
        raise RuntimeError(f"rknn-toolkit2 {step} failed (status {code}): {tail}")


def _dataset(calibration: str, folder: Path) -> str:
    """The toolkit's dataset file: one .npy path per line, one input each."""
    data = np.load(calibration)
    lines = []
    for i, x in enumerate(data):
        path = folder / f"calib-{i}.npy"
        np.save(path, x[None].astype(np.float32))
        lines.append(str(path))
    listing = folder / "dataset.txt"
    listing.write_text("\n".join(lines) + "\n")
    return str(listing)


def build_and_simulate(req: dict, log: io.StringIO) -> dict:
    import onnx

    sys.path.append(req["torch_site"])
    from rknn.api import RKNN

    source = onnx.load(req["source"], load_external_data=False)
    name = source.graph.input[0].name
    x = np.load(req["inputs"]).astype(np.float32)
    rknn = RKNN(verbose=False)
    try:
        config = {"target_platform": req["platform"],
                  "optimization_level": int(req.get("optimization_level", 3))}
        if req["quantize"]:
            config.update(quantized_dtype="w8a8", quantized_algorithm=req["algorithm"])
        _check("config", rknn.config(**config), log)
        _check("load_onnx", rknn.load_onnx(req["source"], inputs=[name],
                                           input_size_list=[[1, *x.shape[1:]]]), log)
        with tempfile.TemporaryDirectory() as d:
            dataset = _dataset(req["calibration"], Path(d)) if req["quantize"] else None
            _check("build", rknn.build(do_quantization=req["quantize"], dataset=dataset), log)
        _check("export_rknn", rknn.export_rknn(req["out"]), log)
        _check("init_runtime (simulator)", rknn.init_runtime(), log)
        t0 = time.perf_counter()
        rows = []
        for i in range(len(x)):
            outs = rknn.inference(inputs=[x[i:i + 1]], data_format="nchw")
            rows.append(np.concatenate([np.asarray(o, np.float32).reshape(1, -1)
                                        for o in outs], 1))
        np.save(req["rows"], np.concatenate(rows) if rows else np.zeros((0, 0), np.float32))
        return {"ok": True, "inputs": len(x), "simulate_s": round(time.perf_counter() - t0, 2)}
    finally:
        rknn.release()


def main() -> int:
    """Build and simulate the request named on the command line; print the result as JSON."""
    req = json.loads(Path(sys.argv[1]).read_text())
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            result = build_and_simulate(req, log)
    except Exception as exc:  # the toolkit raises bare ValueErrors: reported, not a traceback
        last = [line for line in str(exc).splitlines() if line.strip()][-1:] or [""]
        result = {"ok": False, "error": f"{type(exc).__name__}: {last[0].strip()}"}
    try:  # the toolkit's version, for the record
        import importlib.metadata

        result["toolkit"] = importlib.metadata.version("rknn-toolkit2")
    except importlib.metadata.PackageNotFoundError:
        pass
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
