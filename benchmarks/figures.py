"""The figures the benchmarks and experiments draw: matplotlib on its file backend (a device or
CI has no screen), each PNG written under a temporary name and renamed into place, so a failed
plot never leaves half a picture under the final name."""

from __future__ import annotations

from pathlib import Path

from motivnet_edge.targets.files import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (imported here, not at module load: the device
    install has no matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110, **savefig) -> None:
    """``fig`` written to ``path`` as PNG, atomically, then closed; ``savefig`` goes to
    matplotlib's own (``bbox_inches="tight"``, say)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(Path(path), suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", **savefig)
    finally:
        plt.close(fig)
