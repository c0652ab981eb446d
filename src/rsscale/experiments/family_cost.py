"""The cost of every family per model evaluation, next to Cohen's, with each method's own computation apart.

Every family spends most of its time in the sampling engine (:class:`rsscale.sampling.Sampler`): noisy copies
through the model, votes counted.  What a family adds on top is either more model evaluations (an ensemble's k
members, QCRS's sigma search, Smooth-Reduce's patches), or computation of its own between the draws (a radius
search, a sigma optimisation, a weight fit).  This experiment certifies the same inputs with every family, in one
process, on the same model, batch size and device, and separates the two:

* ``sampling_seconds``: wall-clock inside the engine (:data:`rsscale.sampling.SAMPLING_CLOCK`); divided by the
  model evaluations it is the *cost per evaluation*, and its ratio to Cohen's says whether the family runs at the
  engine's speed (``per_evaluation_ratio``, the median over rounds of the ratio within each round);
* ``method_seconds``: the rest of the family's wall-clock (its own computation), per input.

The families run in rounds, in a rotated order each round, so drift in machine load hits all of them; medians over
rounds are reported.  A model evaluation is one noisy sample through one model (``extra["model_evaluations"]``
where a family records it, else its forward passes).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from rsscale import methods
from rsscale.data import Dataset
from rsscale.experiments.tables import write_table
from rsscale.provenance import device_name, utc_now, write_sidecar
from rsscale.run import certifier_from_files
from rsscale.sampling import SAMPLING_CLOCK

#: Columns of the ``family_cost`` table.
COLUMNS = ["run", "method", "sound", "inputs", "forward_passes", "evaluations", "seconds", "sampling_seconds",
           "method_seconds", "us_per_evaluation", "per_evaluation_ratio", "evaluation_ratio", "seconds_ratio",
           "method_share", "rounds", "device", "threads"]
#: Per-evaluation ratio to Cohen's within which a family counts as running at the engine's speed.
ENGINE_SPEED = 1.3


def _certify_once(certifier, xs: torch.Tensor, seed: int) -> dict:
    """One certification of ``xs``: wall-clock, sampling time, forward passes and model evaluations (totals)."""
    sampled = SAMPLING_CLOCK.seconds
    start = time.perf_counter()
    certs = certifier.certify_many(xs, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    passes = sum(c.forward_passes for c in certs)
    evaluations = sum(int(c.extra.get("model_evaluations", c.forward_passes)) for c in certs)
    return {"seconds": seconds, "sampling": SAMPLING_CLOCK.seconds - sampled, "passes": passes,
            "evaluations": evaluations}


def measure(certifiers: Mapping[str, object], xs: torch.Tensor, rounds: int = 5, seed: int = 0,
            baseline: str = "baseline") -> list[dict]:
    """Rows of the table for ``certifiers`` (label -> certifier), each certifying ``xs`` once per round after one
    warm-up round; ratios are to the certifier labelled ``baseline`` (Cohen's CERTIFY on the same model)."""
    if baseline not in certifiers:
        raise ValueError(f"the family cost needs a Cohen baseline labelled {baseline!r}; got {sorted(certifiers)}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    labels = list(certifiers)
    records: dict[str, list[dict]] = {label: [] for label in labels}
    for r in range(rounds + 1):
        for label in labels[r % len(labels):] + labels[: r % len(labels)]:
            record = _certify_once(certifiers[label], xs, seed)
            if r:  # round 0 warms up
                records[label].append(record)
    base = records[baseline]
    rows = []
    for label in labels:
        mine = records[label]
        per_eval = [m["sampling"] / m["evaluations"] for m in mine]
        base_eval = [b["sampling"] / b["evaluations"] for b in base]
        seconds = statistics.median(m["seconds"] for m in mine)
        sampling = statistics.median(m["sampling"] for m in mine)
        method_seconds = statistics.median(max(m["seconds"] - m["sampling"], 0.0) for m in mine)
        name = certifiers[label].name
        rows.append({
            "run": label, "method": name, "sound": methods.info(name).sound, "inputs": len(xs),
            "forward_passes": mine[0]["passes"] / len(xs), "evaluations": mine[0]["evaluations"] / len(xs),
            "seconds": seconds / len(xs), "sampling_seconds": sampling / len(xs),
            "method_seconds": method_seconds / len(xs),
            "us_per_evaluation": 1e6 * statistics.median(per_eval),
            "per_evaluation_ratio": statistics.median(p / b for p, b in zip(per_eval, base_eval, strict=True)),
            "evaluation_ratio": mine[0]["evaluations"] / base[0]["evaluations"],
            "seconds_ratio": statistics.median(m["seconds"] / b["seconds"] for m, b in zip(mine, base, strict=True)),
            "method_share": method_seconds / seconds if seconds else 0.0, "rounds": rounds,
        })
    return rows


def family_cost_table(data: str, runs: Mapping[str, Mapping], out: str | Path, *, inputs: int = 10, rounds: int = 5,
                      seed: int = 0, device: str = "cpu", parameters: dict | None = None,
                      trust_checkpoint: bool = False) -> list[dict]:
    """Build every run of ``runs`` (label -> ``{"method", "checkpoint": [paths], "sigma", "params", "params_file"}``,
    as the certify rule gets them) on the dataset ``data``, measure them on its first ``inputs`` test inputs
    (:func:`measure`), write the table ``out`` (.csv, .md, .tex) and its sidecar; return the rows."""
    started = utc_now()
    dataset = Dataset.load(data)
    if not 1 <= inputs <= len(dataset.x_test):
        raise ValueError(f"inputs must lie in [1, {len(dataset.x_test)}] (the test set), got {inputs}")
    certifiers = {}
    for label, spec in runs.items():
        checkpoints = spec["checkpoint"] if isinstance(spec["checkpoint"], list) else [spec["checkpoint"]]
        certifiers[label], _, _ = certifier_from_files(dataset, data, checkpoints, spec["method"], spec.get("sigma"),
                                                       spec.get("params"), spec.get("params_file"), device,
                                                       trust_checkpoint)
    rows = [{**row, "device": device_name(device), "threads": torch.get_num_threads()}
            for row in measure(certifiers, dataset.x_test[:inputs], rounds, seed)]
    write_table(rows, COLUMNS, str(out).removesuffix(".csv"),
                caption=f"Cost per model evaluation of every family next to Cohen's (same model, inputs, batch); "
                        f"within {ENGINE_SPEED}x of Cohen's per evaluation is the engine's speed")
    write_sidecar(Path(out).with_suffix(".json"), parameters or {}, started, device)
    return rows


def slower_than_engine(rows: Sequence[dict]) -> list[dict]:
    """The rows whose cost per model evaluation exceeds :data:`ENGINE_SPEED` times Cohen's."""
    return [row for row in rows if row["per_evaluation_ratio"] > ENGINE_SPEED]
