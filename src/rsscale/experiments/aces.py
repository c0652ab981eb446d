"""The ACES experiment: per-input certificates of a theta sweep, the ``aces`` table, the ``aces_tradeoff`` figure and
the claim test ``aces_tradeoff``.

A sweep file (written by ``rsscale aces``) has one row per (input, theta), from one sample set per input
(:meth:`rsscale.methods.aces.Aces.certify_thetas`); theta = 1 is pure RS (Cohen's CERTIFY on F at the full alpha).
Metrics per theta:

* clean accuracy: prediction == label, whether certified or not (the core fallback counts; ABSTAIN is wrong);
* certified accuracy at r: correct, certified (``certified`` = 1) and radius >= r -- an uncertified core prediction
  counts at no radius, r = 0 included;
* ACR: mean of radius * [correct and certified];
* selection rate: fraction of inputs where the smoothed selector certified F.

The table also has the core model alone and, per ACES row, a one-sided exact McNemar test of its clean accuracy
against pure RS on the same inputs (binomial on the discordant inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from rsscale import methods
from rsscale.data import Dataset
from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, FigureOptions, TableOptions, register
from rsscale.experiments.figures import color, marker, place_labels, plt, save
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_rows
from rsscale.io import RowWriter, as_columns, file_sha256, read_result, read_rows, write_csv_atomic
from rsscale.models import load_models, training_sigma
from rsscale.provenance import utc_now, write_sidecar
from rsscale.run import certify_packs, input_indices, run_identity

SWEEP_COLUMNS = ["idx", "label", "theta", "prediction", "correct", "certified", "selected", "radius", "p_lower",
                 "p_f", "p_select", "f_prediction", "core_prediction", "forward_passes", "seconds"]


def sweeps(plan: Plan) -> dict[str, dict]:
    """The theta-sweep files of the ``aces`` section -> their models: F = the main study's Gaussian-trained model at
    each sigma, core = the same architecture trained without noise."""
    spec = plan.config.get("aces")
    if not spec:
        return {}
    return {f"results/aces/{spec['dataset']}/sigma{sigma}.csv": {"model": plan.model(spec["dataset"], sigma),
                                                                 "core": plan.model(spec["dataset"], 0.0)}
            for sigma in spec["sigmas"]}


def runs(plan: Plan) -> list[str]:
    return list(sweeps(plan))


def sweep_params(config: dict) -> dict:
    """The certification parameters of every sweep (``rsscale aces --params``)."""
    spec = config["aces"]
    return {"n0": spec["n0"], "n": spec["n"], "alpha": config["cohen"]["alpha"],
            "batch_size": config["cohen"]["batch_size"]}


def sweep_records(indices: Sequence[int], labels: Sequence[int], thetas: Sequence[float], certs_by_theta) -> list[dict]:
    """Rows of a sweep file from ``certify_thetas``' output (one certificate list per theta)."""
    rows = []
    for theta, certs in zip(thetas, certs_by_theta, strict=True):
        for idx, label, cert in zip(indices, labels, certs, strict=True):
            e = cert.extra
            rows.append({"idx": int(idx), "label": int(label), "theta": float(theta), "prediction": cert.prediction,
                         "correct": int(cert.prediction == label), "certified": e["certified"],
                         "selected": e["selected"], "radius": cert.radius, "p_lower": cert.p_lower, "p_f": e["p_f"],
                         "p_select": e["p_select"], "f_prediction": e["f_prediction"],
                         "core_prediction": e["core_prediction"], "forward_passes": cert.forward_passes,
                         "seconds": cert.seconds})
    return rows


def write_sweep(rows: Sequence[dict], path: str | Path) -> None:
    write_csv_atomic(path, rows, SWEEP_COLUMNS)


def run_sweep(data: str, checkpoint: str, core: str, thetas: Sequence[float], out: str | Path, *,
              sigma: float | None = None, params: dict | None = None, seed: int = 0, skip: int = 1,
              max_inputs: int | None = None, pack: int = 10, device: str = "cpu",
              progress: bool = True, trust_checkpoint: bool = False,
              writer: Mapping | None = None) -> tuple[dict, list[int]]:
    """The theta sweep of F (``checkpoint``, noise-trained) and the core model on the test inputs of ``data``.

    One sample set per input serves every theta (theta = 1, pure RS, always included); the packs are seeded as
    in :mod:`rsscale.run` and their rows written as they finish (a killed sweep resumes; ``writer``: options of
    :class:`rsscale.io.RowWriter`).  Writes ``out`` and its sidecar; returns the sidecar record and the inputs swept.
    """
    started = utc_now()
    dataset = Dataset.load(data)
    (model, meta), (core_model, core_meta) = load_models([checkpoint, core], dataset, data, trust_checkpoint)
    sigma = training_sigma(meta, sigma, checkpoint)
    thetas = sorted(set(thetas) | {1.0})
    certifier = methods.build("aces", model=model, num_classes=dataset.num_classes, sigma=sigma, core=core_model,
                              device=device, **(params or {}))
    indices = input_indices(len(dataset.x_test), skip, max_inputs)

    def certify_pack(chunk: list[int], generator) -> list[dict]:
        certs = certifier.certify_thetas(dataset.x_test[chunk], thetas, generator)
        return sweep_records(chunk, dataset.y_test[chunk].tolist(), thetas, certs)

    identity = run_identity(certifier, seed, skip, max_inputs, pack, command="aces", thetas=thetas,
                            data_sha256=file_sha256(data), checkpoint_sha256=meta["sha256"],
                            core_sha256=core_meta["sha256"])
    with RowWriter(out, key=("idx", "theta"), columns=SWEEP_COLUMNS, identity=identity, what="ACES sweep",
                   inputs=[data, checkpoint, core], **(writer or {})) as results:
        certify_packs(indices, certify_pack, results, lambda i: all((i, t) in results for t in thetas), seed=seed,
                      pack=pack, progress=progress, desc="aces")
    parameters = {"sigma": sigma, "thetas": thetas, "seed": seed, "skip": skip, "max_inputs": max_inputs,
                  "pack": pack, "data": data, "checkpoint": checkpoint, "core": core, **certifier.settings()}
    parameters.pop("theta")
    record = write_sidecar(Path(out).with_suffix(".json"), parameters, started, device,
                           checkpoint_sha256=meta["sha256"], core_sha256=core_meta["sha256"], dataset=dataset.name,
                           run=results.record)
    return record, indices


def read_sweep(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """A complete sweep file's columns (float arrays) and its JSON sidecar's parameters."""
    rows, sidecar = read_result(path)
    return as_columns(rows), sidecar.get("parameters", {})


def _metrics(correct, certified, radius, selected, radii) -> dict:
    good = correct & certified
    row = {"clean_accuracy": float(correct.mean()), "selection_rate": float(selected.mean())}
    row.update({f"r={r:g}": float(np.mean(good & (radius >= r))) for r in radii})
    row["ACR"] = float(np.mean(np.where(good, radius, 0.0)))
    return row


def _mcnemar_p(better: np.ndarray, worse: np.ndarray) -> float:
    """One-sided exact McNemar p-value that ``better`` (bool per input) is right more often than ``worse``."""
    b, c = int(np.sum(better & ~worse)), int(np.sum(~better & worse))
    return float(binomtest(b, b + c, 0.5, alternative="greater").pvalue) if b + c else 1.0


def _clean_gain(correct: np.ndarray, rs_correct: np.ndarray) -> dict:
    """The clean-accuracy gain over pure RS on the same inputs (both bool per input, in input order): its 95 %
    paired-bootstrap interval and the one-sided exact McNemar p-value that decides the claim."""
    gain = claims.paired_difference(correct.astype(float), rs_correct.astype(float))
    return {**dict(zip(("clean_gain", "clean_gain_low", "clean_gain_high"), gain, strict=True)),
            "clean_gain_p": _mcnemar_p(correct, rs_correct)}


def aces_rows(paths: Sequence[str | Path], radii: Sequence[float]) -> list[dict]:
    """Per sweep file (one sigma): the core model alone, ACES at each theta < 1, pure RS (theta = 1)."""
    rows = []
    for path in paths:
        col, params = read_sweep(path)
        sigma = params.get("sigma", float("nan"))
        thetas = sorted(set(col["theta"].tolist()))
        if 1.0 not in thetas:
            raise ValueError(f"{path} has no theta = 1 rows (pure RS), thetas {thetas}")
        at = {t: col["theta"] == t for t in thetas}
        rs = at[1.0]
        order = np.argsort(col["idx"][rs])
        rs_correct = col["correct"][rs][order].astype(bool)
        base = {"sigma": sigma, "inputs": int(rs.sum())}
        core_correct = (col["core_prediction"][rs] == col["label"][rs])[order]
        zeros = np.zeros(len(core_correct), dtype=bool)
        rows.append({**base, "method": "core", "theta": float("nan"),
                     **_metrics(core_correct, zeros, zeros.astype(float), zeros, radii),
                     **_clean_gain(core_correct, rs_correct)})
        for theta in thetas:
            mask = at[theta]
            correct = col["correct"][mask].astype(bool)
            row = {**base, "method": "rs" if theta == 1.0 else "aces", "theta": theta,
                   **_metrics(correct, col["certified"][mask].astype(bool), col["radius"][mask],
                              col["selected"][mask].astype(bool), radii)}
            row.update(_clean_gain(correct[np.argsort(col["idx"][mask])], rs_correct))
            rows.append(row)
    return rows


def _theta_span(names: list[str]) -> str:
    """One label for the thetas of coincident points: ``0.5..1`` for a run of them."""
    names = list(dict.fromkeys(names))
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def aces_tradeoff_figure(rows: Sequence[dict], prefix) -> list[Path]:
    """Clean accuracy vs ACR, one curve per sigma as theta varies (labels: theta, placed without collisions, one per
    group of coincident points); pure RS a star, the core a line."""
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    points, texts, colours, sizes = [], [], [], []
    for i, sigma in enumerate(dict.fromkeys(r["sigma"] for r in rows)):
        subset = [r for r in rows if r["sigma"] == sigma]
        curve = sorted((r for r in subset if r["method"] in ("aces", "rs")), key=lambda r: r["theta"])
        ax.plot([r["ACR"] for r in curve], [r["clean_accuracy"] for r in curve], "-", marker=marker(i), color=color(i),
                ms=4, label=f"ACES, sigma = {sigma:g}")
        points += [(r["ACR"], r["clean_accuracy"]) for r in curve]
        texts += [f"{r['theta']:g}" for r in curve]
        colours += [color(i)] * len(curve)
        sizes += [14 if r["method"] == "rs" else 5 for r in curve]
        for r in subset:
            if r["method"] == "rs":
                ax.plot(r["ACR"], r["clean_accuracy"], "*", color=color(i), ms=14, mec="k", label=f"pure RS, {sigma:g}")
    core = [r["clean_accuracy"] for r in rows if r["method"] == "core"]
    if core:
        ax.axhline(core[0], color="0.5", ls="--", lw=1, label="core model alone (no certificate)")
    ax.set_xlabel("ACR (l2)")
    ax.set_ylabel("clean accuracy")
    ax.set_title("ACES: accuracy vs robustness as theta varies (labels: theta)")
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    place_labels(ax, points, texts, fontsize=6, colors=colours, marker_points=sizes, join=_theta_span)
    return save(fig, prefix)


def table(inputs: Sequence[str], out: str, options: TableOptions) -> None:
    """The table from theta-sweep files (``rsscale aces``), not certification runs."""
    write_rows(aces_rows(inputs, options.radii), out, "ACES vs pure RS and the core model", options.reference)


def figure(inputs: Sequence[str], out: str, options: FigureOptions) -> None:
    """The figure from the ``aces`` table's CSV."""
    aces_tradeoff_figure(read_rows(inputs[0]), out)


@claims.test("aces_tradeoff")
def aces_claim(tables: dict[str, list[dict]], params: dict) -> claims.Outcome:
    """Per sigma, the ACES theta of highest clean accuracy whose ACR is >= (1 - max_acr_loss) x pure RS's: supported
    when at every sigma its clean accuracy beats pure RS's (McNemar p < ``p``), not supported when at some sigma no
    such theta gains at all, else inconclusive."""
    max_loss, level = params.get("max_acr_loss", 0.2), params.get("p", 0.05)
    rows = tables["aces"]
    verdicts, texts, gains, inputs = [], [], [], 0
    for sigma in dict.fromkeys(r["sigma"] for r in rows):
        rs = [r for r in rows if r["sigma"] == sigma and r["method"] == "rs"]
        ok = [r for r in rows if r["sigma"] == sigma and r["method"] == "aces"
              and r["ACR"] >= (1 - max_loss) * rs[0]["ACR"]] if rs else []
        if not ok:
            verdicts.append("not supported" if rs else "not measured")
            texts.append(f"sigma {sigma:g}: no theta within {max_loss:.0%} of pure RS's ACR")
            continue
        best = max(ok, key=lambda r: (r["clean_accuracy"], r["ACR"]))
        gain = best["clean_accuracy"] - rs[0]["clean_accuracy"]
        gains.append((gain, best.get("clean_gain_low", claims.NAN), best.get("clean_gain_high", claims.NAN)))
        inputs = max(inputs, int(best.get("inputs", 0)))
        texts.append(f"sigma {sigma:g}, theta {best['theta']:g}: clean {best['clean_accuracy']:.3f} vs "
                     f"{rs[0]['clean_accuracy']:.3f} (gain {gain:+.3f} [{gains[-1][1]:+.3f}, {gains[-1][2]:+.3f}], "
                     f"p = {best['clean_gain_p']:.3g}), ACR {best['ACR']:.3f} vs {rs[0]['ACR']:.3f}")
        verdicts.append("supported" if best["clean_gain_p"] < level else
                        "not supported" if gain <= 0 else "inconclusive")
    threshold = (f"clean accuracy above pure RS's (McNemar p < {level:g}) keeping >= {100 * (1 - max_loss):g} % of "
                 "its ACR, at every sigma")
    if not verdicts:
        return claims.not_measured("no rows", threshold)
    smallest = min(gains, default=(claims.NAN,) * 3)
    return claims.Outcome("; ".join(texts), claims.worst(verdicts), *smallest, interval=claims.bootstrap_kind(
        inputs, "of the smallest clean-accuracy gain over pure RS; the verdict is the exact one-sided McNemar test "
        "per sigma (p-values in the details)"), threshold=threshold)


register(Experiment("aces", "ACES: certify F or fall back to a core model, across the selector's theta",
                    runs, table, figure))
