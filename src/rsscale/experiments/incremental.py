"""The incremental-certification experiment: re-certify modified models from scratch and with IRS.

The original model is certified once with Cohen's CERTIFY (n0 + n samples),
caching what IRS needs (:class:`rsscale.methods.irs.IRSCache`).  For each
modification (:func:`rsscale.modify.modify`) the modified model is certified
from scratch (Cohen, n0 + n fresh samples) and incrementally (IRS, n_p
replayed samples or the fallback), both timed on the same inputs.  One row
per modification: wall-clock of both and their ratio, mean forward passes,
mean zeta over the inputs that took the incremental path, ACR and certified
accuracy at the given radii of both, and how often they took the same
decision (same class, or both abstaining).  The claims-ledger test
``incremental_speedup`` reads that table.

Reference: Ugare et al., "Incremental Randomized Smoothing Certification",
ICLR 2024 (their Table 1: speedup of IRS over certification from scratch).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from rsscale import methods
from rsscale.certificate import Certificate
from rsscale.data import Dataset
from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, register
from rsscale.experiments.plan import Plan
from rsscale.experiments.tables import write_table
from rsscale.io import RowWriter, file_sha256, read_rows
from rsscale.methods.irs import IRSCache
from rsscale.metrics import average_certified_radius, certified_accuracy
from rsscale.models import load_models, training_sigma
from rsscale.modify import modify, zero_fraction
from rsscale.noise import Gaussian
from rsscale.provenance import utc_now, write_sidecar
from rsscale.run import derived_seed, input_indices
from rsscale.smooth import SmoothedClassifier

#: Columns of the incremental table that hold counts (integers).
COUNT_COLUMNS = ("inputs", "n", "n_incremental")


def model(plan: Plan) -> str:
    """The original model: the main dataset's model at the ``incremental`` section's sigma."""
    return plan.model(plan.config["cohen"]["dataset"], plan.config["incremental"]["sigma"])


def _seed(seed: int, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, *keys))


def _certify_many(smoothed: SmoothedClassifier, n0: int, n: int, alpha: float, xs, generator) -> list[Certificate]:
    return smoothed.certify_many(xs, n0, n, alpha, generator)


def _timed(certify, xs: torch.Tensor, pack: int, seed: int, key: int) -> tuple[list[Certificate], float]:
    """Certificates of ``certify(chunk, generator)`` over packs of inputs, and the total wall-clock."""
    certs, start = [], time.perf_counter()
    for index, pos in enumerate(range(0, len(xs), pack)):
        certs += certify(xs[pos : pos + pack], _seed(seed, key, index))
    return certs, time.perf_counter() - start


def _quality(certs: Sequence[Certificate], labels: np.ndarray, radii: Sequence[float], tag: str) -> dict:
    radius = np.array([c.radius for c in certs])
    correct = np.array([c.prediction for c in certs]) == labels
    row = {f"ACR_{tag}": average_certified_radius(radius, correct)}
    row.update({f"{tag}_r={r:g}": certified_accuracy(radius, correct, r) for r in radii})
    return row


def incremental_rows(model: torch.nn.Module, xs: torch.Tensor, labels, num_classes: int, sigma: float,
                     modifications: Sequence[str], n0: int, n: int, n_incremental: int, alpha: float,
                     alpha_zeta: float, gamma: float, radii: Sequence[float], batch_size: int = 1000,
                     pack: int = 10, seed: int = 0, done: Collection[str] = (),
                     on_row: Callable[[dict], object] | None = None) -> tuple[list[dict], dict]:
    """One row per modification (module docstring), and a summary of the original's certification.

    Everything runs on the CPU (the int8 kernels are CPU-only); seeds come from ``seed`` and the modification's
    position.  Modifications in ``done`` are skipped; ``on_row`` gets each row as it finishes.
    """
    labels = np.asarray(labels)
    modified_models = {name: modify(model, name) for name in modifications}  # bad names fail before any work
    foreign = sorted(set(done) - set(modified_models))
    if foreign:
        raise ValueError(f"the rows on disk hold modifications {foreign} that this run does not make: they belong to "
                         f"another run (remove its file to start afresh)")
    cache = IRSCache(model, num_classes, sigma, n0, n, alpha, batch_size, "cpu")
    original, original_seconds = _timed(cache.certify_many, xs, pack, seed, 0)
    summary = {"seconds": original_seconds, **_quality(original, labels, radii, "original")}
    rows = []
    for k, (name, modified) in enumerate(modified_models.items(), start=1):
        if name in done:
            continue
        scratch = SmoothedClassifier(modified, num_classes, Gaussian(sigma), batch_size, "cpu")
        from_scratch, scratch_seconds = _timed(functools.partial(_certify_many, scratch, n0, n, alpha),
                                               xs, pack, seed, 2 * k)
        irs = methods.build("irs", model=modified, num_classes=num_classes, sigma=sigma, cache=cache,
                            n_incremental=n_incremental, alpha_zeta=alpha_zeta, gamma=gamma, batch_size=batch_size,
                            device="cpu")
        incremental, irs_seconds = _timed(irs.certify_many, xs, pack, seed, 2 * k + 1)
        on_path = [c for c in incremental if c.extra["incremental"]]
        same = [a.prediction == b.prediction for a, b in zip(from_scratch, incremental, strict=True)]
        row = {
            "modification": name, "inputs": len(xs), "sparsity": zero_fraction(modified), "n": n,
            "n_incremental": n_incremental, "seconds_scratch": scratch_seconds, "seconds_irs": irs_seconds,
            "speedup": scratch_seconds / irs_seconds,
            "passes_scratch": float(np.mean([c.forward_passes for c in from_scratch])),
            "passes_irs": float(np.mean([c.forward_passes for c in incremental])),
            "incremental_fraction": len(on_path) / len(xs),
            "zeta_mean": float(np.mean([c.extra["zeta"] for c in on_path])) if on_path else float("nan"),
            **_quality(from_scratch, labels, radii, "scratch"), **_quality(incremental, labels, radii, "irs"),
            "same_decision": float(np.mean(same)),
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows, summary


def run_incremental(data: str, checkpoint: str, out: str | Path, *, sigma: float | None = None,
                    modifications: Sequence[str], n0: int, n: int, n_incremental: int, alpha: float,
                    alpha_zeta: float, gamma: float, radii: Sequence[float], max_inputs: int | None = None,
                    batch_size: int = 1000, pack: int = 10, seed: int = 0, parameters: dict | None = None,
                    trust_checkpoint: bool = False, writer: Mapping | None = None) -> tuple[list[dict], dict]:
    """The experiment on the first ``max_inputs`` test inputs of ``data``: the table ``out`` (.csv, .md, .tex)
    and its sidecar (``parameters`` and the sigma used recorded); returns the rows and the original's summary.

    Each modification's row is written as it finishes; a killed run, restarted, re-certifies the original (IRS
    needs its cache) and only the modifications not on disk; rows of other modifications are refused, rows of
    another identity (every other setting, the data and checkpoint sha256) too.  ``writer``: options of
    :class:`rsscale.io.RowWriter` (the rows file, restart, ...).
    """
    started = utc_now()
    dataset = Dataset.load(data)
    [(model, meta)] = load_models([checkpoint], dataset, data, trust_checkpoint)
    sigma = training_sigma(meta, sigma, checkpoint)
    indices = input_indices(len(dataset.x_test), 1, max_inputs)
    prefix = str(out).removesuffix(".csv")
    identity = {"command": "incremental", "sigma": sigma, "n0": n0, "n": n, "n_incremental": n_incremental,
                "alpha": alpha, "alpha_zeta": alpha_zeta, "gamma": gamma, "radii": list(radii),
                "max_inputs": max_inputs, "batch_size": batch_size, "pack": pack, "seed": seed,
                "data_sha256": file_sha256(data), "checkpoint_sha256": meta["sha256"]}
    with RowWriter(f"{prefix}.csv", key=("modification",), identity=identity, what="incremental run",
                   inputs=[data, checkpoint], prefix=["modification"], **(writer or {})) as results:
        finished = read_rows(results.rows_path, ("modification",), COUNT_COLUMNS) if results.done else []
        rows, original = incremental_rows(
            model, dataset.x_test[indices], dataset.y_test[indices].numpy(), dataset.num_classes, sigma, modifications,
            n0, n, n_incremental, alpha, alpha_zeta, gamma, radii, batch_size, pack, seed,
            done={row["modification"] for row in finished}, on_row=results.write)
    rows = sorted(finished + rows, key=lambda row: list(modifications).index(row["modification"]))
    write_table(rows, list(rows[0]), prefix, caption="Incremental RS vs certification from scratch")
    write_sidecar(Path(f"{prefix}.json"), {**(parameters or {}), "sigma": sigma}, started, "cpu",
                  checkpoint_sha256=meta["sha256"], dataset=dataset.name, original=original, run=results.record)
    return rows, original


@claims.test("incremental_speedup")
def speedup_test(tables: dict[str, list[dict]], params: dict) -> claims.Outcome:
    """Every modification is re-certified by IRS at least ``min_speedup`` x faster (wall-clock, a point estimate)
    than from scratch, taking the same decision on at least ``min_agreement`` of the inputs (the lowest share judged
    on its exact 95 % interval); the ACR of both is reported."""
    rows = tables["incremental"]
    threshold = (f">= {params.get('min_speedup', 1.0):g}x faster and the same decision on >= "
                 f"{100 * params.get('min_agreement', 0.0):g} % of inputs")
    if not rows:
        return claims.not_measured("no rows", threshold)
    fast = [r["speedup"] >= params.get("min_speedup", 1.0) for r in rows]
    agree = [r["same_decision"] >= params.get("min_agreement", 0.0) for r in rows]
    measured = "; ".join(
        f"{r['modification']}: {r['speedup']:.1f}x faster, mean zeta {r['zeta_mean']:.4f}, ACR {r['ACR_irs']:.3f} vs "
        f"{r['ACR_scratch']:.3f}, same decision on {100 * r['same_decision']:.0f} %" for r in rows
    ) + f" ({int(rows[0]['inputs'])} inputs, n = {int(rows[0]['n'])}, n_p = {int(rows[0]['n_incremental'])})"
    lowest = min(rows, key=lambda r: r["same_decision"])
    low, high = claims.binomial_interval(lowest["same_decision"] * lowest["inputs"], lowest["inputs"])
    verdict = "supported" if all(fast) and all(agree) else "not supported" if not any(fast) else "inconclusive"
    if verdict == "supported" and claims.judge(low, high, lower=params.get("min_agreement", 0.0)) != "supported":
        verdict = "inconclusive"  # the lowest agreement is above the threshold, its interval is not
    return claims.Outcome(measured, verdict, lowest["same_decision"], low, high,
                          f"exact binomial over {int(lowest['inputs'])} inputs (lowest same-decision share, "
                          f"{lowest['modification']}); the speedup is one wall-clock ratio", threshold)


register(Experiment("incremental", "incremental RS against certification from scratch per model modification"))
