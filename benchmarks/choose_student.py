"""The old name of the student experiment, kept so ``python -m
motivnet_edge.benchmarks.choose_student`` still works: it runs
``motivnet_edge.experiments.choose_student`` as a script (a forward by name, not an import:
experiments sit above benchmarks)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("motivnet_edge.experiments.choose_student", run_name="__main__",
                     alter_sys=True)
