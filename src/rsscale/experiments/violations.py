"""The violation search for input-dependent sigma (``rsscale violations``, :mod:`rsscale.violations`): certified
balls on the ball oracle and points inside them where the smoothed classifier, at the noise the method picks there,
says another class.  :func:`run` writes the ``violations`` table; this module also holds its claim test
``violations_found``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rsscale import violations
from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, register
from rsscale.experiments.tables import write_table
from rsscale.io import RowWriter, parse_cell, read_rows

CAPTION = ("Violation search for input-dependent sigma on the ball oracle: points inside certified balls where the "
           "smoothed classifier, at the noise the method picks there, says another class")


def as_written(row: Mapping[str, str]) -> dict:
    """A search row read back from the resumable writer's file, with the types the search gave it: the label as text,
    ``sound`` as a bool (written 1/0), counts as integers (floats are always written with a point), the rest as
    :func:`rsscale.io.parse_cell` reads it."""
    def typed(column: str, text: str):
        if column == "method":
            return text
        if column == "sound":
            return text == "1"
        return int(text) if text.lstrip("-").isdigit() else parse_cell(text)

    return {column: typed(column, text) for column, text in row.items()}


def run(out: str | Path, specs: Mapping[str, dict], seed: int = 0, writer: Mapping | None = None,
        **settings) -> list[dict]:
    """The search (:func:`rsscale.violations.run_violations`) into the table ``out`` (.csv, .md, .tex).

    Each method's row goes to ``out.csv`` as its search finishes; a killed run, restarted with the same arguments,
    searches only the methods it had not finished and writes the table an uninterrupted run would.
    ``writer``: options of :class:`rsscale.io.RowWriter` (the rows file, restart, ...).
    """
    identity = {"command": "violations", "methods": dict(specs), "seed": seed, "settings": settings}
    with RowWriter(f"{out}.csv", key=("method",), columns=violations.COLUMNS, identity=identity, what="search",
                   **(writer or {})) as results:
        recorded = {r["method"]: r for r in map(as_written, read_rows(results.rows_path, violations.COLUMNS))} \
            if results.done else {}

        def report(row: dict) -> None:
            results.write(row)
            print(violations.format_row(row), flush=True)

        rows = violations.run_violations(specs, seed=seed, report=report, recorded=recorded, **settings)
    write_table(rows, violations.COLUMNS, out, caption=CAPTION)
    return rows


@claims.test("violations_found")
def violations_found_test(tables: dict[str, claims.Rows], params: dict) -> claims.Outcome:
    """The ``violations`` table: supported when every method of ``unsound`` has a found violation and every method of
    ``sound`` none; not supported when a listed unsound method has none or a sound one has some.  The key number is
    the count of listed methods that behave as listed."""
    rows = {r["method"]: r for r in tables["violations"]}
    listed = list(params.get("unsound", [])) + list(params.get("sound", []))
    threshold = f"all {len(listed)} listed methods behave as listed (violations > 0 for unsound, 0 for sound)"
    if not listed or any(m not in rows for m in listed):
        return claims.not_measured(f"missing rows: {[m for m in listed if m not in rows]}", threshold)
    measured = "; ".join(f"{m}: {int(rows[m]['violations'])} violations in {int(rows[m]['points'])} points"
                         for m in listed)
    behaving = (sum(rows[m]["violations"] > 0 for m in params.get("unsound", []))
                + sum(rows[m]["violations"] == 0 for m in params.get("sound", [])))
    return claims.Outcome(measured, "supported" if behaving == len(listed) else "not supported", float(behaving),
                          interval="none: a violation is a counterexample checked exactly on the ball oracle, not an "
                          "estimate", threshold=threshold)


register(Experiment("violations", "violations of input-dependent-sigma certificates on the ball oracle"))
