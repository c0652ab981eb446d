"""Figures as PDF (paper) and PNG (report, README), drawn with a headless backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rsscale.analysis.results import Run  # noqa: E402
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


def certified_accuracy_curves(runs: Sequence[Run], prefix, key: str = "sigma", title: str = "") -> list[Path]:
    """Certified accuracy vs l2 radius, one line per run (e.g. per sigma)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for run in sorted(runs, key=lambda r: r.parameters.get(key, 0)):
        radius = run.radius()
        top = max(float(radius.max(initial=0.0)), 1e-3)
        grid = np.linspace(0.0, top * 1.05, 300)
        name = r"$\sigma$" if key == "sigma" else key
        ax.plot(grid, [run.certified_accuracy(r) for r in grid], label=f"{name} = {run.parameters.get(key)}")
    ax.set_xlabel(r"$\ell_2$ radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return save(fig, prefix)


def sample_count_figure(rows: Sequence[dict], prefix, sigma: float, alpha: float) -> list[Path]:
    """Left: wall-clock per certification vs n. Right: radius vs n, with the ceiling sigma Phi^-1(alpha^(1/n))."""
    from scipy.stats import norm

    n = np.array([row["n"] for row in rows], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.3))
    left.loglog(n, [row["seconds_median"] for row in rows], "o-", label="measured (median)")
    reference = rows[-1]["seconds_median"] * n / n[-1]
    left.loglog(n, reference, "--", color="gray", label=r"$\propto n$")
    left.set_xlabel("estimation samples n")
    left.set_ylabel("seconds per certification")
    left.legend(frameon=False)
    right.semilogx(n, [row["ACR"] for row in rows], "o-", label="ACR")
    right.semilogx(n, [row["radius_median_certified"] for row in rows], "s-", label="median radius (certified)")
    dense = np.logspace(np.log10(n.min()), np.log10(n.max()), 200)
    right.semilogx(dense, sigma * norm.ppf(alpha ** (1.0 / dense)), ":", color="gray",
                   label=r"ceiling $\sigma\Phi^{-1}(\alpha^{1/n})$")
    right.set_xlabel("estimation samples n")
    right.set_ylabel(r"$\ell_2$ radius")
    right.set_ylim(bottom=0)
    right.legend(frameon=False)
    fig.tight_layout()
    return save(fig, prefix)


NOISE_STYLE = {"gaussian": ("C0", "o"), "laplace": ("C1", "s"), "uniform": ("C2", "^")}


def dimension_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """ACR per norm vs d (log-log), one line per (data group, noise), with theory slopes from the first point."""
    from rsscale.analysis.dimension import THEORY

    norms = ["l1", "l2", "linf"]
    groups = sorted({r["group"] for r in rows})
    fig, axes = plt.subplots(len(groups), 3, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for gi, group in enumerate(groups):
        for ni, norm in enumerate(norms):
            ax = axes[gi][ni]
            for noise in sorted({r["noise"] for r in rows if r["group"] == group}):
                subset = sorted((r for r in rows if r["group"] == group and r["noise"] == noise), key=lambda r: r["d"])
                d = np.array([r["d"] for r in subset], float)
                acr = np.array([r[f"ACR_{norm}"] for r in subset])
                color, marker = NOISE_STYLE.get(noise, ("k", "x"))
                ax.loglog(d, np.where(acr > 0, acr, np.nan), marker=marker, color=color, label=noise)
                slope = THEORY[(subset[0]["native_norm"], norm)]
                if acr[0] > 0:
                    ax.loglog(d, acr[0] * (d / d[0]) ** slope, ":", color=color, alpha=0.7)
            ax.set_title(f"{group}: ACR in {norm.replace('inf', '_inf')}")
            ax.set_xlabel("input dimension d")
            if ni == 0:
                ax.set_ylabel("average certified radius")
            ax.legend(frameon=False, fontsize=8)
    fig.text(0.5, -0.01, "dotted: theoretical slope if the native-norm radius were constant in d",
             ha="center", fontsize=8)
    fig.tight_layout()
    return save(fig, prefix)


REMEDY_STYLE = {"cohen": ("C0", "o"), "projected": ("C2", "^"), "np": ("C7", "s"), "dsrs": ("C3", "D")}


def remedies_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """DSRS gain, projected-RS gain and cost per input vs d (rows of :func:`rsscale.analysis.remedies.remedy_rows`)."""
    fig, (gain_dsrs, gain_projected, cost) = plt.subplots(1, 3, figsize=(13, 3.6))
    groups = sorted({r["group"] for r in rows})
    lines = ["-", "--", ":"]

    dsrs = sorted({r["method"] for r in rows if r["method"].startswith("dsrs")})

    def series(group, method, key):
        subset = sorted((r for r in rows if r["group"] == group and r["method"] == method), key=lambda r: r["d"])
        return np.array([r["d"] for r in subset], float), np.array([r[key] for r in subset], float)

    for gi, group in enumerate(groups):
        style = lines[gi % len(lines)]
        for di, method in enumerate(dsrs):
            d, gain = series(group, method, "gain_l2")
            if len(d):
                gain_dsrs.semilogx(d, gain, style, marker="D", color=f"C{3 + 2 * di}", label=f"{group}, {method}")
        for norm, color in (("l2", "C2"), ("linf", "C4")):
            d, gain = series(group, "projected", f"gain_{norm}")
            if len(d):
                label = f"{group}, " + norm.replace("inf", r"$_\infty$")
                gain_projected.semilogx(d, gain, style, marker="^", color=color, label=label)
        costs = [("cohen", "sampling_seconds", "Cohen: sampling"),
                 ("projected", "sampling_seconds", "projected: sampling")]
        for method in dsrs:
            costs += [(method, "sampling_seconds", f"{method}: sampling (P and Q)"),
                      (method, "radius_seconds", f"{method}: radius search")]
        for method, key, label in costs:
            d, seconds = series(group, method, key)
            if len(d):
                color, marker = REMEDY_STYLE["dsrs" if method.startswith("dsrs") else method]
                face = "none" if key == "radius_seconds" else color
                cost.loglog(d, seconds, style, marker=marker, color=color, markerfacecolor=face,
                            label=f"{group}: {label}")
    for ax in (gain_dsrs, gain_projected):
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xlabel("input dimension d")
        ax.legend(frameon=False, fontsize=7)
    gain_dsrs.set_title("DSRS: ACR / NP ACR (same P samples)")
    gain_dsrs.set_ylabel(r"$\ell_2$ ACR ratio")
    gain_projected.set_title("projected RS: ACR / plain Gaussian RS ACR")
    gain_projected.set_ylabel("ACR ratio")
    cost.set_title("cost per input (median)")
    cost.set_xlabel("input dimension d")
    cost.set_ylabel("seconds")
    cost.legend(frameon=False, fontsize=6)
    fig.tight_layout()
    return save(fig, prefix)


def training_tradeoff_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Left: smoothed clean accuracy vs ACR, one curve per training objective across sigma.
    Right: ACR vs training time relative to Gaussian augmentation (rows of ``training_rows``)."""
    fig, (tradeoff, cost) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, objective in enumerate(dict.fromkeys(r["objective"] for r in rows)):
        subset = sorted((r for r in rows if r["objective"] == objective), key=lambda r: r["sigma"])
        acr = [r["ACR"] for r in subset]
        tradeoff.plot(acr, [r["r=0"] for r in subset], "o-", color=f"C{i}", label=objective)
        for r in subset:
            tradeoff.annotate(f"{r['sigma']:g}", (r["ACR"], r["r=0"]), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")
        cost.semilogx([r["time_vs_gaussian"] for r in subset], acr, "o", color=f"C{i}", label=objective)
    tradeoff.set_xlabel("ACR (l2)")
    tradeoff.set_ylabel("certified accuracy at r = 0")
    tradeoff.set_title("robustness vs accuracy (labels: sigma)")
    tradeoff.legend(frameon=False, fontsize=8)
    cost.set_xlabel("training wall-clock / Gaussian augmentation")
    cost.set_ylabel("ACR (l2)")
    cost.set_title("what the ACR costs to train")
    fig.tight_layout()
    return save(fig, prefix)


def cost_frontier_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Left: ACR vs mean forward passes per input (Cohen's sample-count sweep as a line, ISS as markers; hollow =
    flagged unsound). Right: certified accuracy at each target radius vs passes, adaptive certifiers as markers
    (rows of :func:`rsscale.analysis.cost.cost_rows`)."""
    fig, (frontier, decisions) = plt.subplots(1, 2, figsize=(11, 3.8))
    cohen = sorted((r for r in rows if r["method"] == "cohen"), key=lambda r: r["forward_passes_mean"])
    passes = [r["forward_passes_mean"] for r in cohen]
    frontier.semilogx(passes, [r["ACR"] for r in cohen], "o-", color="C0", label="Cohen, n = 10^2 .. 10^5")
    for i, row in enumerate(r for r in rows if r["method"] not in ("cohen", "adaptive")):
        face = f"C{i + 1}" if row["sound"] else "none"
        frontier.semilogx(row["forward_passes_mean"], row["ACR"], "D", color=f"C{i + 1}", markerfacecolor=face,
                          label=row["label"] + ("" if row["sound"] else " (unsound)"))
    frontier.set_xlabel("forward passes per input (mean)")
    frontier.set_ylabel("ACR (l2)")
    frontier.set_title("cost frontier")
    frontier.legend(frameon=False, fontsize=7)
    targets = sorted(float(k.split("@")[1]) for k in rows[0] if k.startswith("cert_acc@"))
    markers = {"horvath": "s", "betting": "^", "union": "v"}
    for ti, r in enumerate(targets):
        color = f"C{ti}"
        decisions.semilogx(passes, [c[f"cert_acc@{r:g}"] for c in cohen], "o-", color=color, alpha=0.6,
                           label=f"Cohen, r = {r:g}")
        for row in rows:
            if row["method"] == "adaptive" and row["r_target"] == r:
                strategy = row["label"].split()[0]
                decisions.semilogx(row["forward_passes_mean"], row["cert_acc_at_target"], markers.get(strategy, "x"),
                                   color=color, label=f"{strategy}, r = {r:g}")
    decisions.set_xlabel("forward passes per input (mean)")
    decisions.set_ylabel("certified accuracy at r")
    decisions.set_title("deciding at a target radius")
    decisions.legend(frameon=False, fontsize=7, ncol=2)
    fig.tight_layout()
    return save(fig, prefix)


def extra_information_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """What does the extra information cost: ACR ratio to Cohen (with the paired 95 % bootstrap interval of the
    difference, scaled to a ratio) vs the wall-clock ratio, one marker per method; hollow = flagged unsound (rows of
    :func:`rsscale.analysis.extra_information.extra_information_rows`, the first row the baseline)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    base_acr = rows[0]["ACR"]
    for i, row in enumerate(rows[1:]):
        color = f"C{i % 10}"
        errors = [[(row["ACR_diff"] - row["ACR_diff_low"]) / base_acr],
                  [(row["ACR_diff_high"] - row["ACR_diff"]) / base_acr]]
        ax.errorbar(row["cost_ratio_seconds"], row["ACR_ratio"], yerr=errors, fmt="o", color=color,
                    markerfacecolor=color if row["sound"] else "none", capsize=3,
                    label=row["method"] + ("" if row["sound"] else " (unsound)"))
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock per input / Cohen's (same n, model, inputs)")
    ax.set_ylabel("ACR / Cohen's ACR")
    ax.set_title("what does the extra information cost?")
    ax.legend(frameon=False, fontsize=7, loc="best")
    fig.tight_layout()
    return save(fig, prefix)
