"""A weight soup of INT8 ONNX students (Wortsman et al. 2022, "Model soups"): students with the
same graph (the same family, side and export), their weights averaged into one file of one
student's cost, to be measured against each of them and their ensemble by
:mod:`motivnet_edge.benchmarks.agreement`.

    python -m motivnet_edge.experiments.soup OUT.onnx A.onnx B.onnx [C.onnx ...]

Each weight and bias is read back to float through its own scale (per channel), averaged and
quantised again (weights symmetric per channel over their new range, biases on the averaged
scale); each activation keeps the range its files span on average (scale and zero point from
the mean of their lows and highs). The files are averaged as they are: with their BatchNorms
folded into the convolutions, which a soup of the float students before folding is not; two
students a soup suits stay close to each of them (and the soup of a file with itself is that
file). The result carries the first file's metadata with the soup's ingredients named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.targets.errors import MotivnetError

QDQ = ("QuantizeLinear", "DequantizeLinear")


def _load(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # a missing or unreadable file, or not ONNX
        raise MotivnetError(f"{path}: not a readable ONNX file ({exc})") from None


def _dequantized(q: np.ndarray, scale: np.ndarray, zero, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    if scale.ndim == 1:
        shape[min(axis, q.ndim - 1)] = -1
    zero = np.asarray(0 if zero is None else zero, np.float64)
    return (q.astype(np.float64) - zero.reshape(shape if zero.ndim else ())) \
        * scale.astype(np.float64).reshape(shape if scale.ndim else ())


def _requantized(w: np.ndarray, q0: np.ndarray, scales: list, axis: int) -> tuple:
    """``w`` quantised like ``q0``: int32 biases on the averaged scale, int8 weights symmetric
    on their new per-channel range."""
    if q0.dtype == np.int32:
        scale = np.mean(scales, 0)
        shape = [-1] if scale.ndim else []
        return np.round(w / scale.reshape(shape)).astype(np.int32), scale.astype(np.float32)
    reduce = tuple(i for i in range(w.ndim) if i != axis) if scales[0].ndim else None
    scale = np.maximum(np.abs(w).max(axis=reduce) / 127.0, 1e-12)
    shape = [1] * w.ndim
    if scale.ndim:
        shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _activation(values: list[dict], scale: str, zeros: list) -> tuple:
    """The scale and zero point spanning the mean of the files' lows and highs."""
    info = np.iinfo(values[0][zeros[0]].dtype) if zeros[0] else np.iinfo(np.uint8)
    lows, highs = [], []
    for v, zero in zip(values, zeros, strict=True):
        z, s = (int(v[zero]) if zero else 0), float(v[scale])
        lows.append((info.min - z) * s)
        highs.append((info.max - z) * s)
    low, high = float(np.mean(lows)), float(np.mean(highs))
    s = (high - low) / (info.max - info.min)
    z = np.clip(round(info.min - low / s), info.min, info.max)
    return np.asarray(s, np.float32), (np.asarray(z, info.dtype) if zeros[0] else None)


def soup(paths: list[Path], out: Path) -> None:
    """Average the students at ``paths`` into ``out`` (written under a temporary name, then
    renamed); files whose graphs differ are refused by name."""
    import onnx
    from onnx import numpy_helper

    from motivnet_edge.compress.artifacts import embed_metadata
    from motivnet_edge.targets.files import atomic_path
    from motivnet_edge.targets.metadata import read_metadata

    models = [_load(p) for p in paths]
    base = models[0]
    shape = [(n.op_type, tuple(n.input[:2])) for n in base.graph.node]
    for path, model in zip(paths[1:], models[1:], strict=True):
        if [(n.op_type, tuple(n.input[:2])) for n in model.graph.node] != shape:
            raise MotivnetError(f"{path}: its graph is not {paths[0]}'s (another family, "
                                "side or export): only the same student can be averaged")
    values = [{i.name: numpy_helper.to_array(i) for i in m.graph.initializer} for m in models]
    new, zero_points = {}, {}
    for nodes in zip(*[m.graph.node for m in models], strict=True):
        if nodes[0].op_type not in QDQ:
            continue
        x, scale = nodes[0].input[:2]
        zeros = [n.input[2] if len(n.input) > 2 else None for n in nodes]
        axis = next((a.i for a in nodes[0].attribute if a.name == "axis"), 1)
        if x in values[0] and x not in new:  # a weight or a bias
            if any(z and np.any(v[z]) for v, z in zip(values, zeros, strict=True)):
                raise MotivnetError(f"{x}: its zero point is not 0 (only weights quantised "
                                    "symmetrically are averaged)")
            w = np.mean([_dequantized(v[x], v[scale], v[z] if z else None, axis)
                         for v, z in zip(values, zeros, strict=True)], 0)
            new[x], new[scale] = _requantized(w, values[0][x], [v[scale] for v in values], axis)
        elif x not in values[0] and scale not in new:  # an activation
            new[scale], zero_points[scale] = _activation(values, scale, zeros)
    for init in base.graph.initializer:
        if init.name in new:
            init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    # the files share equal zero points by value; each activation gets its own
    for node in base.graph.node:
        if node.op_type in QDQ and zero_points.get(node.input[1]) is not None:
            node.input[2] = node.input[1] + "_soup_zero"
    base.graph.initializer.extend(numpy_helper.from_array(z, s + "_soup_zero")
                                  for s, z in zero_points.items() if z is not None)
    used = {name for node in base.graph.node for name in node.input}
    kept = [init for init in base.graph.initializer if init.name in used]
    del base.graph.initializer[:]
    base.graph.initializer.extend(kept)
    meta = {k: v for k, v in read_metadata(paths[0]).items()
            if k not in ("schema", "format", "content_sha256")}
    meta["soup"] = [str(p) for p in paths]
    del base.metadata_props[:]
    with atomic_path(out, suffix=".onnx") as tmp:
        onnx.save(base, str(tmp))
        embed_metadata(tmp, meta)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.soup``: the students' weights averaged into one
    INT8 ONNX file, their metadata carried over with the soup's ingredients named."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the soup's file (.onnx)")
    p.add_argument("students", type=Path, nargs="+", help="INT8 ONNX students, same graph")
    args = p.parse_args(argv)
    if args.out.suffix != ".onnx":
        print(f"error: {args.out}: the soup is written as .onnx", file=sys.stderr)
        return 2
    try:
        soup(args.students, args.out)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: the weights of {len(args.students)} students averaged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
