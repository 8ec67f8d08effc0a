"""The old name of the demo's daemon step, kept so ``python -m
motivnet_edge.benchmarks.demo_daemon`` still works; it lives in :mod:`motivnet_edge.edge.demo`."""

import sys

from motivnet_edge.edge.demo import main

if __name__ == "__main__":
    sys.exit(main())
