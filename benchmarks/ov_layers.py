"""Where OpenVINO's execution of a QDQ (quantization-aware) ONNX graph departs from the graph's
own simulation: at every activation quantisation point (a QuantizeLinear -> DequantizeLinear
pair on a tensor that is not a weight), the IR cut off there and compiled as a model of its own
(OpenVINO's int8 transformations apply up to that point, as in the whole model) against the
same tensor in the simulation (ONNX Runtime, graph optimisations off). Differences are in
quantisation steps of that point: a tensor on the same int8 grid differs by whole steps.

    python -m motivnet_edge.benchmarks.ov_layers MODEL.onnx FACES_DIR [--faces 256]
        [--json OUT.json] [--precision f32] [--ends]

Prints one line per point in graph order: how many values differ by at least one step, the
mean and largest difference in steps, and the top-1 agreement at the end. With ``--ends``,
instead, the whole graph's outputs in each engine (ONNX Runtime; OpenVINO from the graph as
it is and from the graph with the quantisation OpenVINO skips taken out; a copy with one
convolution's weight scales four times too large, as damage the gate must refuse) against
both simulations, with the gate's figures (:func:`motivnet_edge.compress.fidelity.compare`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.agreement import in_batches
from motivnet_edge.targets.errors import MotivnetError


def activation_points(model) -> list[tuple[str, float, str]]:
    """(DequantizeLinear output name, its scale, the op the pair quantises) of every
    activation Q/DQ pair in graph order."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    points = []
    for node in model.graph.node:
        q = made_by.get(node.input[0])
        if node.op_type != "DequantizeLinear" or q is None or q.op_type != "QuantizeLinear":
            continue
        if q.input[0] in inits:  # a weight
            continue
        source = made_by.get(q.input[0])
        points.append((node.output[0], float(np.ravel(inits[node.input[1]])[0]),
                       source.op_type if source is not None else "input"))
    return points


def simulated(onnx_path: Path, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
    """Every named tensor of the graph run as written (no fusion)."""
    import onnx

    from motivnet_edge.compress.inference import simulation_session

    model = onnx.load(str(onnx_path))
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.helper.ValueInfoProto(name=n) for n in names
                              if n not in known)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "all.onnx"
        onnx.save(model, str(path))
        sess = simulation_session(path)
    return sess.run(names, {sess.get_inputs()[0].name: batch})


def _find_output(model, name: str):
    for op in model.get_ordered_ops():
        for out in op.outputs():
            if name in out.get_names():
                return out
    raise MotivnetError(f"tensor {name!r} is not in the converted IR")


def openvino_at(onnx_path: Path, name: str, batch: np.ndarray, precision: str):
    """The tensor ``name`` as OpenVINO computes it in the IR cut off after it."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    cut = ov.Model([_find_output(model, name)], model.get_parameters(), "cut")
    compiled = ov.Core().compile_model(cut, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    return compiled(batch)[0]


def compare_points(onnx_path: Path, batch: np.ndarray, precision: str = "f32") -> list[dict]:
    """One row per activation quantisation point, then one for the graph's output."""
    import onnx

    model = onnx.load(str(onnx_path))
    points = activation_points(model)
    output = model.graph.output[0].name
    names = [p[0] for p in points] + [output]
    sims = simulated(onnx_path, names, batch)
    rows = []
    for (name, scale, op), sim in zip([*points, (output, 0.0, "output")], sims, strict=True):
        got = openvino_at(onnx_path, name, batch, precision)
        steps = np.abs(got.astype(np.float64) - sim) / (scale or 1.0)
        row = {"point": name, "after": op, "scale": scale,
               "off_by_a_step": float(np.mean(steps >= 0.5)) if scale else None,
               "mean_steps": float(steps.mean()), "max_steps": float(steps.max())}
        if sim.ndim == 2:
            row["top1_agreement"] = float(np.mean(got.argmax(1) == sim.argmax(1)))
        rows.append(row)
        print(_line(len(rows), row), flush=True)
    return rows


def _engine_rows(path: Path, batch: np.ndarray, engine: str) -> np.ndarray:
    import openvino as ov

    from motivnet_edge.compress.inference import simulation_session
    from motivnet_edge.targets.engines.onnxruntime import cpu_session

    if engine == "openvino":
        compiled = ov.Core().compile_model(ov.convert_model(str(path)), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
        run = lambda x: compiled(x)[0]  # noqa: E731
    else:
        sess = simulation_session(path) if engine == "simulation" else cpu_session(path)
        run = lambda x: sess.run(None, {sess.get_inputs()[0].name: x})[0]  # noqa: E731
    return in_batches(run, batch)


def damaged(model, scale: float = 4.0):
    """A copy of a QDQ graph whose middle convolution's weight scales are ``scale`` times
    theirs."""
    import copy

    from onnx import numpy_helper

    model = copy.deepcopy(model)
    made = {out: node for node in model.graph.node for out in node.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    name = made[convs[len(convs) // 2].input[1]].input[1]
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * scale, name))
    return model


def compare_ends(onnx_path: Path, batch: np.ndarray) -> list[dict]:
    """Each engine's output against each simulation, with the gate's figures."""
    import onnx

    from motivnet_edge.compress.fidelity import compare
    from motivnet_edge.compress.int8.graph import unquantised_residual_convs

    plain = onnx.load(str(onnx_path))
    graphs = {"qat": plain, "qat-openvino": onnx.load(str(onnx_path)),
              "damaged": damaged(plain)}
    unquantised_residual_convs(graphs["qat-openvino"])
    with tempfile.TemporaryDirectory() as d:
        paths = {k: Path(d) / f"{k}.onnx" for k in graphs}
        for k, g in graphs.items():
            onnx.save(g, str(paths[k]))
        sims = {k: _engine_rows(paths[k], batch, "simulation") for k in ("qat", "qat-openvino")}
        runs = {"onnxruntime": _engine_rows(paths["qat"], batch, "onnxruntime"),
                "openvino (graph as it is)": _engine_rows(paths["qat"], batch, "openvino"),
                "openvino (qat-openvino graph)": _engine_rows(paths["qat-openvino"], batch,
                                                              "openvino"),
                "onnxruntime, damaged": _engine_rows(paths["damaged"], batch, "onnxruntime")}
    rows = []
    for run, logits in runs.items():
        for sim, rows_sim in sims.items():
            c = compare(logits, rows_sim, None, None)
            rows.append({"engine": run, "against": sim, **c})
            print(f"{run:<31} vs {sim:<13} agreement {c['agreement_with_float']:.4f}  "
                  f"flips {c['flips']:3d} (max margin {c['flip_max_float_margin']:.3f})  "
                  f"noise {c['int8_margin_noise']:.3f}  decided {c['decided']['agreement']:.4f}"
                  f" ({c['decided']['n']})  KL {c['kl_from_float']:.5f}", flush=True)
    return rows


def _line(k: int, row: dict) -> str:
    off = "" if row["off_by_a_step"] is None else f"off {row['off_by_a_step']:7.4f}  "
    top1 = f"  top-1 {row['top1_agreement']:.4f}" if "top1_agreement" in row else ""
    return (f"{k:3d} {row['after']:<18} {row['point'][-28:]:<28} scale {row['scale']:.5f}  "
            f"{off}mean {row['mean_steps']:8.4f}  max {row['max_steps']:8.3f}{top1}")


def face_batch(onnx_path: Path, faces: Path, count: int) -> np.ndarray:
    """Inputs for the artifact from the first ``count`` faces found under ``faces``."""
    from motivnet_edge.compress.distil.data import collect, media_files
    from motivnet_edge.targets.engine import load_engine
    from motivnet_edge.targets.preprocess import make_inputs

    with load_engine(onnx_path) as engine:
        spec = engine.crop
    files = media_files(faces)
    files = files[:: max(1, len(files) // (count + count // 8))]  # spread over the folder
    crops = collect(files, synthetic=0, progress=False).crops[:count]
    return make_inputs(crops, spec)


def main(argv: list[str] | None = None) -> int:
    """Compare OpenVINO with the simulation at every quantisation point of a QDQ graph."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("faces", type=Path)
    parser.add_argument("--faces", dest="count", type=int, default=256)
    parser.add_argument("--precision", default="f32")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--ends", action="store_true",
                        help="compare whole-graph outputs of each engine with each simulation")
    args = parser.parse_args(argv)
    try:
        batch = face_batch(args.model, args.faces, args.count)
        print(f"{len(batch)} faces, {args.model}", flush=True)
        rows = compare_ends(args.model, batch) if args.ends else \
            compare_points(args.model, batch, args.precision)
    except MotivnetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
