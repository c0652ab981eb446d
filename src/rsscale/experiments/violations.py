"""The violation search for input-dependent sigma (``rsscale violations``, :mod:`rsscale.violations`): certified
balls on the ball oracle and points inside them where the smoothed classifier, at the noise the method picks there,
says another class.  The search writes the ``violations`` table itself; this module holds its claim test
``violations_found``."""

from __future__ import annotations

from rsscale.experiments import claims
from rsscale.experiments.base import Experiment, register


@claims.test("violations_found")
def violations_found_test(tables: dict[str, claims.Rows], params: dict) -> tuple[str, str]:
    """The ``violations`` table: supported when every method of ``unsound`` has a found violation and every method of
    ``sound`` none; not supported when a listed unsound method has none or a sound one has some."""
    rows = {r["method"]: r for r in tables["violations"]}
    listed = list(params.get("unsound", [])) + list(params.get("sound", []))
    if not listed or any(m not in rows for m in listed):
        return f"missing rows: {[m for m in listed if m not in rows]}", "not measured"
    measured = "; ".join(f"{m}: {int(rows[m]['violations'])} violations in {int(rows[m]['points'])} points"
                         for m in listed)
    holds = (all(rows[m]["violations"] > 0 for m in params.get("unsound", []))
             and all(rows[m]["violations"] == 0 for m in params.get("sound", [])))
    return measured, "supported" if holds else "not supported"


register(Experiment("violations", "violations of input-dependent-sigma certificates on the ball oracle"))
