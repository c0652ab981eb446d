"""Mutation score: every declared mutant of every family run on the harness case that must catch it
(:mod:`rsscale.mutation`, ``rsscale mutants``), killed or surviving, flagged or passed by the confidence-budget audit,
and each family's score ``caught / total``.  The
command writes the ``mutation`` table (one row per mutant) and the ``mutation_score`` table (one row per family); a
surviving mutant is reported there (and fails the command with ``--strict``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rsscale import mutation
from rsscale.experiments.base import Experiment, register
from rsscale.experiments.tables import write_table
from rsscale.io import RowWriter, read_rows

#: Columns of the mutant rows that are text, and those that are counts.
TEXT_COLUMNS = ("method", "mutant", "kind", "case", "killed_at", "verdict", "audit", "finding", "caught_by", "gap")
COUNT_COLUMNS = ("trials", "positions")


def run(out: str | Path, score_out: str | Path, names: Sequence[str] | None = None, seed: int = 0,
        alpha: float = 0.05) -> list[dict]:
    """Every declared mutant (:func:`rsscale.mutation.run_mutations`) into the table ``out`` and the scores per family
    into ``score_out`` (.csv, .md, .tex each); returns the mutant rows.

    Each mutant's row goes to ``out.csv`` as it finishes, so a killed run, restarted with the same arguments, runs only
    the mutants it had not finished and writes the tables an uninterrupted run would (wall-clock aside).
    """
    with RowWriter(f"{out}.csv", key=("method", "mutant"), columns=mutation.COLUMNS) as writer:
        recorded = {(r["method"], r["mutant"]): r
                    for r in read_rows(writer.path, TEXT_COLUMNS, COUNT_COLUMNS)} if writer.done else {}

        def report(row: dict) -> None:
            writer.write(row)
            print(mutation.format_row(row), flush=True)

        rows = mutation.run_mutations(names, seed, alpha, report=report, recorded=recorded)
    write_table(rows, mutation.COLUMNS, out,
                caption=f"Mutation suite: deliberately wrong certifiers, each on the harness case that must catch it "
                        f"(alpha = {alpha:g}; trials per position; killed: some position FAILs, Holm-corrected as in "
                        f"the soundness table; killed_at: the positions that FAIL; worst_rate: the highest violation "
                        f"rate over the case's positions; audit: the confidence-budget audit, flagged when the alphas "
                        f"a certificate relies on sum to more than alpha or one draw both selects and estimates; "
                        f"caught_by: harness, audit or both)")
    write_table(mutation.scores(rows), mutation.SCORE_COLUMNS, score_out,
                caption="Mutation score per family: mutants caught (killed by the soundness harness or flagged by "
                        "the confidence-budget audit) / mutants declared")
    return rows


register(Experiment("mutation", "deliberately wrong certifiers the soundness harness must catch; score per family"))
