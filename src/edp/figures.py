"""matplotlib for figures written to files: one backend set-up and one way to save.

Every figure of the package and of the benchmarks goes through these two functions, so that a
change of backend, resolution or layout is made once.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (machines here have no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: Path, dpi: int = 110, **savefig) -> None:
    """Lay out (unless the figure was made with a layout engine of its own, such as
    constrained layout), save, and close, so that long studies do not accumulate figures."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, **savefig)
    plt.close(fig)
