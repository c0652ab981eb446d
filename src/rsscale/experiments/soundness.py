"""Soundness: violation rates of every registered certifier on exact oracles, per worst-case position (``rsscale
harness``, :mod:`rsscale.harness`), with Clopper-Pearson intervals, Holm's correction over each case's positions and
each case's power.  The harness writes the ``soundness`` table itself and fails when a method claimed sound violates
its certificates significantly more often than alpha at any position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rsscale import harness
from rsscale.experiments.base import Experiment, register
from rsscale.experiments.tables import write_table
from rsscale.io import RowWriter, read_rows

#: Columns of the harness's rows that are text, and those that are counts.
TEXT_COLUMNS = ("method", "case", "position", "verdict")
COUNT_COLUMNS = ("dim", "n", "trials", "violations")


def run(out: str | Path, trials: int, names: Sequence[str] | None = None, seed: int = 0, alpha: float = 0.05,
        limits: Mapping[str, int] | None = None, uncapped: bool = False, writer: Mapping | None = None) -> list[dict]:
    """The harness (:func:`rsscale.harness.run_harness`) into the table ``out`` (.csv, .md, .tex); returns its rows.

    Each case's rows go to ``out.csv`` as the case finishes, so a killed run, restarted with the same arguments,
    runs only the cases it had not finished and writes the table an uninterrupted run would (wall-clock aside).
    ``writer``: options of :class:`rsscale.io.RowWriter` (the rows file, restart, ...).
    """
    identity = {"command": "harness", "trials": trials, "methods": list(names) if names else None, "seed": seed,
                "alpha": alpha, "limits": dict(limits or {}), "uncapped": uncapped}
    with RowWriter(f"{out}.csv", key=("method", "case", "position"), columns=harness.COLUMNS, identity=identity,
                   what="harness run", **(writer or {})) as results:
        recorded = {(r["method"], r["case"], r["position"]): r
                    for r in read_rows(results.rows_path, TEXT_COLUMNS, COUNT_COLUMNS)} if results.done else {}

        def report(row: dict) -> None:
            results.write(row)
            print(harness.format_row(row), flush=True)

        rows = harness.run_harness(trials, names, seed, alpha, limits, uncapped, report=report, recorded=recorded)
    write_table(rows, harness.COLUMNS, out,
                caption=f"Soundness harness: certificates violated on exact oracles, per position (alpha = {alpha:g}; "
                        f"violations in any of l1, l2, l_inf, and per norm; rate interval: two-sided 95% "
                        f"Clopper-Pearson; exact: the violation probability computed without sampling; p_holm: the "
                        f"one-sided exact binomial test of rate <= alpha (or <= exact), Holm-corrected over the case's "
                        f"positions; FAIL when p_holm < {harness.LEVEL:g} or exact > alpha, for a method that claims "
                        f"soundness; detects_at: the rate, in multiples of alpha, caught with probability "
                        f"{harness.POWER:g})")
    return rows


register(Experiment("soundness", "violation rates of every certifier on exact oracles, per worst-case position"))
