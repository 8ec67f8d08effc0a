"""How a run's teacher answers faces given a random change of expression (``distil --warp``):
its class shares on the faces as they are and warped, and the share whose answer the warp
changes; ``--strip`` saves faces before (top) and after (bottom).

    python -m motivnet_edge.experiments.expression_warp --run OUT [--faces 1500] [--scale 1] \\
        [--strip warp.png] [--json F]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from motivnet_edge.benchmarks.agreement import held_out, in_batches
from motivnet_edge.benchmarks.host import cpu_info
from motivnet_edge.compress.distil.augment import expression_moves, warp_expression, whole_face
from motivnet_edge.targets.errors import MotivnetError
from motivnet_edge.targets.files import write_json
from motivnet_edge.targets.preprocess import cut


def teacher_shift(data: dict, count: int, scale: float = 1.0, seed: int = 0
                  ) -> tuple[dict, np.ndarray, np.ndarray]:
    """The teacher's class shares on ``count`` of ``data``'s faces as they are and with
    :func:`expression_moves` times ``scale`` applied, and the share of faces whose answer
    changes; with the plain and warped cuts."""
    teacher = data["teacher_model"]()
    spec = teacher.crop
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(data["faces"]), min(count, len(data["faces"])), replace=False)
    plain = np.stack([cut(f.image, whole_face(f), spec) for f in (data["faces"][i]
                                                                   for i in chosen)])
    warped = np.stack([warp_expression(p, spec, expression_moves(rng) * scale) for p in plain])
    n = len(data["classes"])
    answers = [in_batches(teacher.predict_cut, v)[:, :n].argmax(1) for v in (plain, warped)]
    shares = [np.bincount(a, minlength=n) / len(a) for a in answers]
    return ({"faces": len(chosen), "scale": scale, "color": spec.color,
             "plain": dict(zip(data["classes"], shares[0].round(4).tolist(), strict=True)),
             "warped": dict(zip(data["classes"], shares[1].round(4).tolist(), strict=True)),
             "changed": round(float((answers[0] != answers[1]).mean()), 4)}, plain, warped)


def main(argv: list[str] | None = None) -> int:
    """``python -m motivnet_edge.experiments.expression_warp``: the teacher's class shares
    before and after the warp, printed (and written as JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a distil run's output folder")
    p.add_argument("--faces", type=int, default=1500, help="how many of its faces")
    p.add_argument("--scale", type=float, default=1.0, help="the moves times this")
    p.add_argument("--strip", type=Path, help="save 8 faces before and after (PNG)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    try:
        result, plain, warped = teacher_shift(held_out(args.run, train=True), args.faces,
                                              args.scale)
    except MotivnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result['faces']} faces, moves x{args.scale:g}: the warp changes the teacher's "
          f"answer on {result['changed']:.1%}")
    print("| class | plain | warped |\n|---|---|---|")
    for name, share in result["plain"].items():
        print(f"| {name} | {share:.3f} | {result['warped'][name]:.3f} |")
    if args.strip:
        import cv2

        strip = np.concatenate([np.concatenate(list(s[:8]), 1) for s in (plain, warped)], 0)
        cv2.imwrite(str(args.strip), strip[..., ::-1] if result["color"] == "rgb" else strip)
    if args.json:
        write_json(args.json, {"cpu": cpu_info(), "run": str(args.run), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
