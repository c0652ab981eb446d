"""Extra information at extra cost: each method family next to Cohen's CERTIFY on the same model and inputs.

The survey (§3.3-3.5) says that local information (dipole, second-order smoothing), ensembles (summed logits,
K-consensus, SWEEN, Smooth-Reduce) and input-specific sigma (DDRS, ANCER, QCRS) buy a larger radius with extra
computation.  For every run this module pairs the inputs with the baseline run (method ``cohen``) and reports

* the ACR ratio and the paired ACR difference with a 95 % bootstrap interval over inputs (per input the
  contribution is ``radius * [correct]``; 2,000 resamples, fixed seed), so a gain within the noise is visible;
* the cost: base-model evaluations per input (``model_evaluations`` where a family records them -- an ensemble
  spends one per member and sample -- else the forward passes) and the median wall-clock per input, each as a
  ratio to the baseline;
* whether the family is sound (from the run's sidecar).

The claim test ``extra_gain`` judges a family's gain on that interval and its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import color, limit_to, mark_off_scale, marker, outliers, plt, ratio_ticks, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import Run, read_run
from rsscale.metrics import radius_if_correct


def members(plan: Plan) -> list[str]:
    """The ensemble members of the ``extra_information`` section: the main model and members trained the same way
    from other seeds."""
    spec, seed = plan.config["extra_information"], plan.config["seed"]
    return [plan.model(spec["dataset"], spec["sigma"])] + [
        plan.model(spec["dataset"], spec["sigma"], seed=seed + k) for k in range(1, spec["members"])]


def sween_weights(config: dict) -> str:
    """The file of SWEEN's fitted ensemble weights (rule ``fit_sween_weights``)."""
    spec = config["extra_information"]
    return f"results/sween/{spec['dataset']}/weights_sigma{spec['sigma']}.json"


def runs(plan: Plan) -> list[str]:
    """The Cohen baseline and every run of the ``extra_information`` section, on the same model, inputs and n."""
    spec = plan.config.get("extra_information")
    if not spec:
        return []

    def run(tag, method, ensemble=False, fit_weights=False, **params):
        return plan.certify(spec["dataset"], method, spec["sigma"],
                            f"{tag}_sigma{spec['sigma']}_n{spec['n']}_{spec['max_inputs']}",
                            plan.cohen_params(spec["n"], **params), spec["max_inputs"], 1, plan.config["cohen"]["pack"],
                            models=members(plan) if ensemble else None,
                            params_file=sween_weights(plan.config) if fit_weights else None)

    return [run("baseline", "cohen")] + [run(tag, **args) for tag, args in spec["runs"].items()]


def run_tag(run: Run) -> str:
    """The run's label: its file name up to the sigma (``ensemble-K2_sigma0.25_...`` -> ``ensemble-K2``)."""
    return run.path.stem.split("_sigma")[0]


def evaluations(run: Run) -> np.ndarray:
    """Base-model evaluations per input: ``model_evaluations`` if recorded, else the forward passes."""
    return run.columns.get("model_evaluations", run.columns["forward_passes"]).astype(float)


def _contributions(run: Run) -> np.ndarray:
    return radius_if_correct(run.radius(), run.correct)


def extra_information_rows(runs: Sequence[Run], radii: Sequence[float]) -> list[dict]:
    """One row per run against the Cohen baseline on the inputs both certified; the baseline is the first row."""
    baselines = [run for run in runs if run.parameters.get("method") == "cohen"]
    if len(baselines) != 1:
        raise ValueError(f"the extra-information table needs exactly one Cohen baseline run, got {len(baselines)}")
    base = baselines[0]
    base_index = {int(i): k for k, i in enumerate(base.columns["idx"])}
    base_seconds = float(np.median(base.columns["seconds"]))
    rows = []
    for run in [base] + [r for r in runs if r is not base]:
        shared = [k for k, i in enumerate(run.columns["idx"]) if int(i) in base_index]
        if not shared:
            raise ValueError(f"{run.path} shares no input with the baseline {base.path}")
        theirs = [base_index[int(run.columns["idx"][k])] for k in shared]
        mine_acr, base_acr = _contributions(run)[shared], _contributions(base)[theirs]
        diff, low, high = claims.paired_difference(mine_acr, base_acr)
        evals = evaluations(run)[shared].mean()
        seconds = float(np.median(run.columns["seconds"]))
        row = {"method": run_tag(run), "family": run.parameters.get("method", ""),
               "sound": bool(run.sidecar.get("sound", True)), "inputs": len(shared),
               "clean_acc": float(run.correct[shared].mean()), "ACR": float(mine_acr.mean()),
               "ACR_ratio": float(mine_acr.mean() / base_acr.mean()) if base_acr.mean() > 0 else float("nan"),
               "ACR_diff": diff, "ACR_diff_low": low, "ACR_diff_high": high,
               "evaluations_per_input": float(evals),
               "cost_ratio_evaluations": float(evals / evaluations(base)[theirs].mean()),
               "seconds_median": seconds, "cost_ratio_seconds": seconds / base_seconds}
        correct, radius = run.correct[shared], run.radius()[shared]
        row.update({f"cert_acc@{r:g}": float(np.mean(correct & (radius >= r))) for r in radii})
        rows.append(row)
    return rows


def extra_information_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """What does the extra information cost: ACR ratio to Cohen (with the paired 95 % bootstrap interval of the
    difference, scaled to a ratio) vs the wall-clock ratio, one marker per method; hollow = flagged unsound (rows of
    :func:`extra_information_rows`, the first row the baseline).  A ratio far from the others and their intervals
    (:func:`outliers`) is an arrow at the axis edge with its value, so that the others' differences stay visible."""
    fig, ax = plt.subplots(figsize=(7.4, 4.2))
    base_acr, others = rows[0]["ACR"], rows[1:]
    ratio = np.array([r["ACR_ratio"] for r in others], dtype=float)
    low = ratio + np.array([r["ACR_diff_low"] - r["ACR_diff"] for r in others], dtype=float) / base_acr
    high = ratio + np.array([r["ACR_diff_high"] - r["ACR_diff"] for r in others], dtype=float) / base_acr
    far = outliers(ratio, low, high)
    handles = []
    for i, row in enumerate(others):
        style = {"color": color(i), "marker": marker(i), "markerfacecolor": color(i) if row["sound"] else "none",
                 "label": row["method"] + ("" if row["sound"] else " (unsound)")}
        if far[i]:  # drawn off-scale below; only its legend entry here
            handles += ax.plot([], [], linestyle="", **style)
            ax.update_datalim([(row["cost_ratio_seconds"], 1.0)])
        else:
            handles.append(ax.errorbar(row["cost_ratio_seconds"], ratio[i], linestyle="", capsize=3,
                                       yerr=[[ratio[i] - low[i]], [high[i] - ratio[i]]], **style))
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_xscale("log")
    ratio_ticks(ax, "x")
    if far.any():
        ax.autoscale_view()
        limit_to(ax, np.append(low[~far], 1.0), np.append(high[~far], 1.0))
        mark_off_scale(ax, [(others[i]["cost_ratio_seconds"], ratio[i],
                             f"{others[i]['method']}: x{ratio[i]:.2f} [{low[i]:.2f}, {high[i]:.2f}]", color(i))
                            for i in np.flatnonzero(far)])
    ax.set_xlabel("wall-clock per input / Cohen's (same n, model, inputs)")
    ax.set_ylabel("ACR / Cohen's ACR")
    ax.set_title("what does the extra information cost?")
    ax.legend(handles=handles, frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    rows = extra_information_rows([read_run(p) for p in inputs], options.radii)
    for row in rows:
        print(f"{row['method']:>14s}: ACR x{row['ACR_ratio']:.3f} (diff {row['ACR_diff']:+.4f},"
              f" 95% CI [{row['ACR_diff_low']:+.4f}, {row['ACR_diff_high']:+.4f}]) at"
              f" x{row['cost_ratio_evaluations']:.2f} evaluations, x{row['cost_ratio_seconds']:.2f} wall-clock"
              + ("" if row["sound"] else " [unsound]"))
    write_rows(rows, out, reference=options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    extra_information_figure(extra_information_rows([read_run(p) for p in inputs], []), out)


@claims.test("extra_gain")
def extra_gain_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """Rows of ``extra_information`` whose family or tag is in ``methods`` against the Cohen baseline, judged on the
    95 % paired-bootstrap interval of the ACR difference (relative to the baseline's ACR):

    * ``expect: gain``: the interval lies above 0 (supported) / below or at 0 (not supported);
    * ``expect: little``: the interval lies below ``max_gain`` (supported) / above it (not supported);
    * ``expect: any``: only the cost decides;

    and, when given, the base-model evaluations per input over the baseline's are >= ``min_cost`` or <= ``max_cost``,
    and the extra evaluations per input are at most ``max_extra`` times ``extra_of_n`` (a search whose cost does not
    depend on n, judged against a run of the published n).
    Intervals straddling the threshold make the claim inconclusive.  The key number is the relative gain of the
    method whose interval decides (the lowest lower end for ``gain``, the highest upper end for ``little``) or, for
    ``any``, the largest extra-evaluation fraction (a count, no interval)."""
    if params["expect"] not in ("gain", "little", "any"):
        raise ValueError(f"extra_gain: expect must be gain, little or any, got {params['expect']!r}")
    threshold = params.get("max_gain", 0.0) if params["expect"] == "little" else 0.0
    rule = {"gain": "relative ACR gain > 0", "little": f"relative ACR gain < {threshold:g}", "any": "any gain"}[
        params["expect"]] + "".join(text for key, text in (
            ("min_cost", f"; >= {params.get('min_cost')}x evaluations"),
            ("max_cost", f"; <= {params.get('max_cost')}x evaluations"),
            ("max_extra", f"; extra evaluations <= {100 * params.get('max_extra', 0):g} % of n = "
                          f"{params.get('extra_of_n', 0):g}")) if key in params)
    rows = tables["extra_information"]
    base = next((r for r in rows if r["family"] == "cohen"), None)
    mine = [r for r in rows if r["family"] in params["methods"] or r["method"] in params["methods"]]
    if base is None or not mine:
        return claims.not_measured("no rows", rule)
    acr = base["ACR"]
    intervals, extras = [], []
    parts, holds, against = [], [], []
    for row in mine:
        low, high = row["ACR_diff_low"] / acr, row["ACR_diff_high"] / acr
        intervals.append((row["ACR_diff"] / acr, low, high))
        cost = row["cost_ratio_evaluations"]
        parts.append(f"{row['method']}: ACR x{row['ACR_ratio']:.3f} (95 % CI of the gain {100 * low:+.1f} .. "
                     f"{100 * high:+.1f} %) at x{cost:.2f} evaluations, x{row['cost_ratio_seconds']:.2f} wall-clock"
                     + ("" if row["sound"] else ", unsound"))
        if params["expect"] == "gain":
            ok, bad = low > threshold, high <= threshold
        elif params["expect"] == "little":
            ok, bad = high < threshold, low > threshold
        else:
            ok, bad = True, False
        if "min_cost" in params:
            ok, bad = ok and cost >= params["min_cost"], bad or cost < params["min_cost"]
        if "max_cost" in params:
            ok, bad = ok and cost <= params["max_cost"], bad or cost > params["max_cost"]
        if "max_extra" in params:  # extra evaluations as a fraction of a Cohen run with extra_of_n samples
            extra = (row["evaluations_per_input"] - base["evaluations_per_input"]) / params["extra_of_n"]
            parts[-1] += f", extra evaluations {100 * extra:.1f} % of n = {params['extra_of_n']:g}"
            extras.append(extra)
            ok, bad = ok and extra <= params["max_extra"], bad or extra > params["max_extra"]
        holds.append(ok)
        against.append(bad)
    measured = f"{'; '.join(parts)} ({int(base['inputs'])} inputs, Cohen ACR {acr:.3f})"
    verdict = "supported" if all(holds) else "not supported" if all(against) else "inconclusive"
    if params["expect"] == "any":
        return claims.Outcome(measured, verdict, max(extras, default=claims.NAN), interval="none: evaluation "
                              "counts per input, fixed by the procedure", threshold=rule)
    pick = min if params["expect"] == "gain" else max
    gain, low, high = pick(intervals, key=lambda i: i[1] if params["expect"] == "gain" else i[2])
    return claims.Outcome(measured, verdict, gain, low, high,
                          claims.bootstrap_kind(base["inputs"], "relative to Cohen's ACR"), rule)


register(Experiment("extra-information", "local information, ensembles and input-specific sigma against Cohen",
                    runs, table, figure))
