"""Figures as PDF (paper) and PNG (report, README), drawn with a headless backend: the style and the writer
shared by every experiment's figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rsscale.io import atomic_path  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3,
                     "font.size": 10, "svg.hashsalt": "rsscale", "pdf.fonttype": 42})


def save(fig, prefix: str | Path) -> list[Path]:
    """Save a figure as ``prefix.pdf`` and ``prefix.png`` (no timestamps, so reruns give the same bytes)."""
    paths = [Path(f"{prefix}{ext}") for ext in (".pdf", ".png")]
    for path, metadata in zip(paths, ({"CreationDate": None}, {"Software": None}), strict=True):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return paths
