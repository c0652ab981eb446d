"""Figures as PDF (paper) and PNG (report, README), drawn with a headless backend: the style and the writer
shared by every experiment's figure, and the helpers that keep a figure readable -- outliers drawn off-scale
instead of squashing the others, point labels placed without collisions, plain numbers on ratio axes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from rsscale.io import atomic_path  # noqa: E402

#: The colour-blind-safe palette of Okabe & Ito (2008, "Color Universal Design"), yellow last (faint on white).
#: It is the colour cycle of every axes, so ``"C0"`` .. ``"C7"`` name these colours in this order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
#: Marker shapes for a second encoding next to colour (e.g. sigma), in the order they are handed out; each reads
#: filled and hollow.
MARKERS = ("o", "s", "^", "D", "v", "p", "<", ">")

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3,
                     "font.size": 10, "svg.hashsalt": "rsscale", "pdf.fonttype": 42,
                     "axes.prop_cycle": cycler(color=PALETTE)})


def color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    """The ``i``-th marker of :data:`MARKERS` (cycling)."""
    return MARKERS[i % len(MARKERS)]


def outliers(values: Sequence[float], low: Sequence[float] | None = None, high: Sequence[float] | None = None,
             factor: float = 3.0, log: bool = False) -> np.ndarray:
    """Mask of the values that would squash the others' axis: farther from the median than ``factor`` times the
    median distance to it (the median absolute deviation; in log10 on a log axis), and farther from the others'
    extent (their intervals ``low``..``high`` included, when given) than that extent is wide.  None when fewer than
    three values are finite or when most values are equal; non-finite values are never outliers."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.log10 if log else np.asarray
        v = scale(np.asarray(values, dtype=float))
        lo = v if low is None else scale(np.asarray(low, dtype=float))
        hi = v if high is None else scale(np.asarray(high, dtype=float))
    finite = np.isfinite(v)
    mask = np.zeros(len(v), dtype=bool)
    if finite.sum() < 3:
        return mask
    distance = np.abs(v - np.median(v[finite]))
    spread = np.median(distance[finite])
    if spread == 0:
        return mask
    mask[finite] = distance[finite] > factor * spread
    inliers = finite & ~mask
    extent_lo, extent_hi = np.nanmin(lo[inliers]), np.nanmax(hi[inliers])
    gap = np.maximum(extent_lo - v, v - extent_hi)
    return mask & (gap > extent_hi - extent_lo)


def limit_to(ax, low: Sequence[float], high: Sequence[float], axis: str = "y", margin: float = 0.08) -> None:
    """Limit ``axis`` to [min(low), max(high)] (e.g. the inliers' interval ends) with a relative margin."""
    lo, hi = float(np.nanmin(low)), float(np.nanmax(high))
    log = (ax.get_yscale() if axis == "y" else ax.get_xscale()) == "log"
    if log:
        lo, hi = np.log10(lo), np.log10(hi)
    pad = margin * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1.0)
    lo, hi = lo - pad, hi + pad
    limits = (10 ** lo, 10 ** hi) if log else (lo, hi)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(*limits)


def mark_off_scale(ax, marks: Sequence[tuple[float, float, str, str]], axis: str = "y", band: float = 0.2) -> None:
    """Values drawn off-scale, each ``(at, value, text, colour)``: an arrow at the edge of the (linear) ``axis``
    towards the value, at position ``at`` on the other axis, under ``text`` (its name and value).  The limits grow by
    ``band`` of their span on each side that has such a value, so the arrows and texts sit clear of the data.  Call
    after the data's limits are set."""
    get, set_ = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    lo, hi = get()
    above = [m for m in marks if m[1] > hi]
    below = [m for m in marks if m[1] <= hi]
    set_(lo - band * (hi - lo) * bool(below), hi + band * (hi - lo) * bool(above))
    lo = get()[0]
    for beyond, side in ((1.0, above), (0.0, below)):
        away = -1 if beyond else 1
        for k, (at, _, text, colour) in enumerate(sorted(side)):
            step = 18 + 10 * (k % 2)
            if axis == "y":
                xy, xycoords, offset = (at, beyond), ("data", "axes fraction"), (0, step * away)
                where = ax.transAxes.inverted().transform(ax.transData.transform((at, lo)))[0]
                align = {"ha": "left" if where < 0.25 else "right" if where > 0.75 else "center",
                         "va": "top" if beyond else "bottom"}
            else:
                xy, xycoords, offset = (beyond, at), ("axes fraction", "data"), (step * away, 0)
                align = {"ha": "right" if beyond else "left", "va": "center"}
            ax.annotate(text, xy=xy, xycoords=xycoords, xytext=offset, textcoords="offset points", color=colour,
                        fontsize=7, arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.2},
                        annotation_clip=False, **align)


def ratio_ticks(ax, axis: str = "x") -> None:
    """Plain-number labels (0.5, 1, 2, 5, ...) on a log-scaled ratio axis, none on the minor ticks: the default
    ``a x 10^b`` minor labels collide when the axis spans a decade or two."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))


def place_labels(ax, points: Sequence[tuple[float, float]], texts: Sequence[str], fontsize: float = 7,
                 colors: Sequence[str] | None = None, marker_points: float | Sequence[float] = 8.0,
                 join: Callable[[list[str]], str] = ", ".join) -> list:
    """Label data points so that no label overlaps another label, a data point's marker or the axes' edge: for each
    point, the first free offset on rings of growing distance (eight directions each) wins; where none is free,
    the one with the least overlap.  ``marker_points``: the markers' size in points (one, or one per point).  Points
    with the same coordinates share one label (their texts through ``join``).
    Call when the axes' size and limits are final (after ``tight_layout``): offsets are in points."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    sizes = np.broadcast_to(np.asarray(marker_points, dtype=float), (len(points),))
    merged: dict[tuple[float, float], list[str]] = {}
    shade: dict[tuple[float, float], str] = {}
    half: dict[tuple[float, float], float] = {}
    for i, (xy, text) in enumerate(zip(points, texts, strict=True)):
        key = (float(xy[0]), float(xy[1]))
        merged.setdefault(key, []).append(text)
        shade.setdefault(key, colors[i] if colors else "0.2")
        half[key] = max(half.get(key, 0.0), sizes[i] / 2)  # in points
    obstacles = []
    for key in merged:
        x, y = ax.transData.transform(key)
        r = half[key] * fig.dpi / 72
        obstacles.append((x - r, y - r, x + r, y + r))
    frame = ax.get_window_extent(renderer)

    def overlap(box) -> float:
        area = 0.0
        for x0, y0, x1, y1 in obstacles:
            area += max(0.0, min(box.x1, x1) - max(box.x0, x0)) * max(0.0, min(box.y1, y1) - max(box.y0, y0))
        outside = (max(0.0, frame.x0 - box.x0) + max(0.0, box.x1 - frame.x1)) * box.height + \
            (max(0.0, frame.y0 - box.y0) + max(0.0, box.y1 - frame.y1)) * box.width
        return area + outside

    labels = []
    for key, names in merged.items():
        best = None
        for distance in (1, 5, 10, 16, 24):
            for dx, dy in _DIRECTIONS:
                step = half[key] + distance
                label = ax.annotate(join(names), key, xytext=(dx * step, dy * step),
                                    textcoords="offset points", fontsize=fontsize, color=shade[key],
                                    ha={1: "left", -1: "right", 0: "center"}[dx],
                                    va={1: "bottom", -1: "top", 0: "center"}[dy])
                box = label.get_window_extent(renderer)
                cost = overlap(box)
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, label, box)
                else:
                    label.remove()
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, label, box = best
        obstacles.append((box.x0, box.y0, box.x1, box.y1))
        labels.append(label)
    return labels


def save(fig, prefix: str | Path) -> list[Path]:
    """Save a figure as ``prefix.pdf`` and ``prefix.png`` (no timestamps, so reruns give the same bytes)."""
    paths = [Path(f"{prefix}{ext}") for ext in (".pdf", ".png")]
    for path, metadata in zip(paths, ({"CreationDate": None}, {"Software": None}), strict=True):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return paths
