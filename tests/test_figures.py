"""The study's figures stay readable: an outlier does not squash the others' axis, no two texts (tick labels,
point labels, legends, titles) overlap, every encoding has a legend entry, one colour-blind-safe palette."""

import itertools

from matplotlib.colors import to_hex
from matplotlib.text import Text

from rsscale.experiments import (
    aces,
    dimension,
    extra_information,
    figures,
    inference_cost,
    remedies,
    sample_count,
    training_methods,
)
from rsscale.experiments.figures import PALETTE, outliers, place_labels, plt


def capture(monkeypatch, module, draw, rows, **options) -> plt.Figure:
    """The figure a ``*_figure`` function of ``module`` draws from ``rows``, drawn but not saved."""
    captured = []
    monkeypatch.setattr(module, "save", lambda fig, prefix: captured.append(fig))
    draw(rows, "unused", **options)
    captured[0].canvas.draw()
    return captured[0]


def drawn_texts(fig) -> list[Text]:
    """Every non-empty text the figure shows: tick labels within the view, titles, axis labels, annotations,
    legend entries."""
    texts = []
    for ax in fig.axes:
        for axis, view in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(view)
            texts += [t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()
                      if lo <= t.get_loc() <= hi and t.label1.get_visible()]
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        texts += ax.get_legend().get_texts() if ax.get_legend() else []
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    return [t for t in texts if t.get_visible() and t.get_text()]


def overlapping(fig) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes (the text alone, without an annotation's arrow) intersect."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in drawn_texts(fig)]
    return [(a, b) for (a, p), (b, q) in itertools.combinations(boxes, 2)
            if min(p.x1, q.x1) - max(p.x0, q.x0) > 0.5 and min(p.y1, q.y1) - max(p.y0, q.y0) > 0.5]


def extra_rows(ratios, sound=None) -> list[dict]:
    base = {"method": "baseline", "family": "cohen", "sound": True, "ACR": 0.5, "ACR_ratio": 1.0, "ACR_diff": 0.0,
            "ACR_diff_low": 0.0, "ACR_diff_high": 0.0, "cost_ratio_seconds": 1.0}
    rows = [base]
    for i, ratio in enumerate(ratios):
        diff = 0.5 * (ratio - 1)
        rows.append({**base, "method": f"m{i}", "family": f"m{i}", "sound": True if sound is None else sound[i],
                     "ACR": 0.5 * ratio, "ACR_ratio": ratio, "ACR_diff": diff, "ACR_diff_low": diff - 0.004,
                     "ACR_diff_high": diff + 0.004, "cost_ratio_seconds": 0.05 * 3 ** i})
    return rows


def test_outliers_flag_only_values_far_from_the_median():
    assert outliers([0.994, 1.02, 1.0, 0.10, 1.015, 1.004]).tolist() == [False, False, False, True, False, False]
    assert not outliers([0.98, 1.03, 1.09, 1.02]).any()  # spread without an outlier
    assert not outliers([1.0, 0.1]).any()  # two values: no majority to measure against
    assert not outliers([1.0, 1.0, 1.0, float("nan"), 0.1]).any()  # the others do not differ: nothing to squash
    assert outliers([1, 2, 3, 2, 1000], log=True).tolist() == [False, False, False, False, True]
    # far by the median distance, yet within the others' intervals' width of them: it squashes nothing
    ratios, half = [0.98, 1.0, 1.0, 1.01], [0.03, 0.0, 0.0, 0.02]
    assert outliers(ratios).any()
    low, high = zip(*[(r - h, r + h) for r, h in zip(ratios, half, strict=True)], strict=True)
    assert not outliers(ratios, low, high).any()


def test_an_outlying_ratio_is_marked_off_scale_and_the_others_fill_the_axis(monkeypatch):
    ratios = [0.994, 1.02, 1.0, 0.10, 1.015, 1.004]
    fig = capture(monkeypatch, extra_information, extra_information.extra_information_figure, extra_rows(ratios))
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low > 0.10 and high - low < 0.2  # the others' differences are visible
    assert low < 0.994 - 0.008 and high > 1.02 + 0.008  # every other interval is within the view
    marks = [t.get_text() for t in ax.texts]
    assert len(marks) == 1 and marks[0].startswith("m3: x0.10")
    assert "m3" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert overlapping(fig) == []


def test_without_an_outlier_nothing_is_off_scale(monkeypatch):
    fig = capture(monkeypatch, extra_information, extra_information.extra_information_figure,
                  extra_rows([0.98, 1.03, 1.09, 1.02], sound=[True, True, True, False]))
    assert len(fig.axes[0].texts) == 0
    assert "m3 (unsound)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_placed_labels_never_overlap_and_coincident_points_share_one():
    fig, ax = plt.subplots(figsize=(4, 3))
    points = [(0.5, 0.98)] * 5 + [(0.49, 0.98), (0.51, 0.98), (0.5, 0.979), (0.0, 0.98), (0.3, 0.96)]
    ax.plot(*zip(*points, strict=True), "o")
    fig.tight_layout()
    labels = place_labels(ax, points, [f"{k / 10:g}" for k in range(len(points))])
    fig.canvas.draw()
    assert len(labels) == 6 and labels[0].get_text() == "0, 0.1, 0.2, 0.3, 0.4"
    assert overlapping(fig) == []
    plt.close(fig)


def aces_rows() -> list[dict]:
    rows = []
    for sigma, top in ((0.25, 0.58), (0.5, 0.47)):
        rows.append({"sigma": sigma, "method": "core", "theta": float("nan"), "ACR": 0.0, "clean_accuracy": 0.98})
        for k in range(11):
            theta = k / 10
            acr = top * min(theta / 0.5, 1.0)  # theta >= 0.5 all land on pure RS's point
            rows.append({"sigma": sigma, "method": "rs" if theta == 1 else "aces", "theta": theta, "ACR": acr,
                         "clean_accuracy": 0.98 if theta < 0.5 else 0.96 + 0.02 * (sigma == 0.25)})
    return rows


def test_aces_theta_labels_do_not_overlap(monkeypatch):
    fig = capture(monkeypatch, aces, aces.aces_tradeoff_figure, aces_rows())
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "0.5..1" in labels  # six coincident thetas, one label
    assert overlapping(fig) == []


def training_rows() -> list[dict]:
    rows = []
    objectives = ["gaussian", "gaussian x2", "gaussian x4", "gaussian x16", "consistency", "crt", "macer",
                  "smoothadv", "salman"]
    for v, variant in enumerate(training_methods.VARIANTS.values()):
        for i, objective in enumerate(objectives):
            for s, sigma in enumerate((0.12, 0.25, 0.5, 1.0)):
                rows.append({"variant": variant, "objective": objective, "sigma": sigma,
                             "collapsed": objective == "crt" and sigma == 1.0, "ACR": 0.6 - 0.12 * s + 0.01 * i,
                             "r=0": 0.98 - 0.15 * s - 0.01 * v, "time_vs_gaussian": 0.3 * 1.45 ** i})
    return rows


def test_training_tradeoff_encodes_sigma_in_a_legend_and_keeps_its_texts_apart(monkeypatch):
    fig = capture(monkeypatch, training_methods, training_methods.training_tradeoff_figure, training_rows())
    entries = [t.get_text() for t in fig.legends[0].get_texts()]
    for wanted in ("objective (colour)", "sigma (marker)", "0.12", "0.25", "0.5", "1", "variant", "shared loop",
                   "published recipe", "collapsed (off the curves)", "salman", "gaussian x16"):
        assert wanted in entries
    assert overlapping(fig) == []
    # every objective its own colour, however many budgets the study trains
    colours = training_methods.objective_colours(sorted({r["objective"] for r in training_rows()}))
    assert len(set(colours.values())) == len(colours)


def test_dimension_remedies_and_cost_figures_keep_their_texts_apart(monkeypatch):
    dims = [10, 100, 1000, 10000, 100000]
    dim_rows = [{"group": g, "noise": noise, "native_norm": norm, "d": d, "ACR_l1": 0.5 * d ** 0.01,
                 "ACR_l2": 0.5 * d ** (-0.5 * (norm != "l2")), "ACR_linf": 0.2 * d ** -0.5}
                for g in ("digits", "synthetic") for noise, norm in (("gaussian", "l2"), ("laplace", "l1"))
                for d in dims]
    assert overlapping(capture(monkeypatch, dimension, dimension.dimension_figure, dim_rows)) == []
    remedy_rows = [{"group": g, "d": d, "method": m, "gain_l2": 1 + 0.001 * k, "gain_linf": 1.1,
                    "sampling_seconds": 1e-4 * d ** 0.7, "radius_seconds": 1e-4 * (m != "cohen")}
                   for g in ("digits", "synthetic") for k, d in enumerate(dims)
                   for m in ("cohen", "projected", "dsrs_truncated")]
    assert overlapping(capture(monkeypatch, remedies, remedies.remedies_figure, remedy_rows)) == []
    cohen = [{"method": "cohen", "label": f"cohen n={n}", "sound": True, "forward_passes_mean": n + 100.0,
              "ACR": 0.6 - 30 / n, "r_target": float("nan"), "cert_acc_at_target": float("nan"),
              "cert_acc@0.25": 0.9, "cert_acc@0.5": 0.7} for n in (100, 1000, 10000, 100000)]
    other = [{**cohen[0], "method": "iss", "label": "iss", "sound": False, "forward_passes_mean": 2e4}]
    adaptive = [{**cohen[0], "method": "adaptive", "label": f"{s} r={r}", "forward_passes_mean": 300.0 * (k + 1),
                 "r_target": r, "cert_acc_at_target": 0.8} for k, s in enumerate(("horvath", "betting"))
                for r in (0.25, 0.5)]
    frontier = capture(monkeypatch, inference_cost, inference_cost.cost_frontier_figure, cohen + other + adaptive)
    assert overlapping(frontier) == []
    counts = [{"n": n, "seconds_median": 1e-5 * n, "ACR": 0.6 - 10 / n, "radius_median_certified": 0.62 - 10 / n}
              for n in (100, 1000, 10000, 100000)]
    fig = capture(monkeypatch, sample_count, sample_count.sample_count_figure, counts, sigma=0.25, alpha=0.001)
    assert overlapping(fig) == []


def test_one_palette_is_every_axes_colour_cycle():
    assert [to_hex(f"C{i}") for i in range(len(PALETTE))] == [c.lower() for c in PALETTE]
    assert figures.color(len(PALETTE)) == PALETTE[0] and len(set(PALETTE)) == len(PALETTE)
