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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsscale.analysis.results import Run

BOOTSTRAP = 2000


def run_tag(run: Run) -> str:
    """The run's label: its file name up to the sigma (``ensemble-K2_sigma0.25_...`` -> ``ensemble-K2``)."""
    return run.path.stem.split("_sigma")[0]


def evaluations(run: Run) -> np.ndarray:
    """Base-model evaluations per input: ``model_evaluations`` if recorded, else the forward passes."""
    return run.columns.get("model_evaluations", run.columns["forward_passes"]).astype(float)


def paired_difference(mine: np.ndarray, theirs: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``mine - theirs`` with a 95 % percentile-bootstrap interval (resampling inputs)."""
    diff = np.asarray(mine, float) - np.asarray(theirs, float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(BOOTSTRAP, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(diff.mean()), float(low), float(high)


def _contributions(run: Run) -> np.ndarray:
    return np.where(run.correct, run.radius(), 0.0)


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
        diff, low, high = paired_difference(mine_acr, base_acr)
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
