"""Coverage-guided fuzzing of one harness with atheris (``pip install atheris``):

    python -m tests.fuzz.run_atheris config --seconds 600 [--corpus DIR]

Seeds the corpus with the harness's valid inputs and runs libFuzzer for the given time; its last
line, ``Done N runs in S second(s)``, is the number of inputs tried. An exception other than
the project's own error stops it with the input saved (libFuzzer's crash-* file) and the
traceback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("harness")
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--corpus", type=Path)
    args, rest = p.parse_known_args()
    import atheris

    with atheris.instrument_imports():
        import motivnet_edge.edge.config  # noqa: F401
        import motivnet_edge.targets.classifier_spec  # noqa: F401
        import motivnet_edge.targets.metadata  # noqa: F401
        import motivnet_edge.targets.preprocess  # noqa: F401
    from tests.fuzz.harnesses import HARNESSES, run_one

    seeds, _ = HARNESSES[args.harness]
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"fuzz-{args.harness}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    folder = Path(tempfile.mkdtemp(prefix="fuzz-work-"))

    def one(data: bytes) -> None:
        run_one(args.harness, data, folder)

    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={args.seconds}",
                   "-max_len=65536", "-rss_limit_mb=4096", *rest], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
