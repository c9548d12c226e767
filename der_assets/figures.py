"""Matplotlib without a display, and a figure as PNG bytes: the one way the domain plots are drawn.

Agg renders to memory, so plots work in a worker, a test or CI with no X server; the bytes go wherever the
caller keeps them (Dagster metadata, a file).
"""

from __future__ import annotations

import io


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: matplotlib costs ~0.3 s to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed so repeated plots do not accumulate memory."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()
