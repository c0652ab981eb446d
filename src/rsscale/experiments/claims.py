"""The claims ledger: each claim of the survey, a measurable statement, and a verdict from the results.

A ledger (``workflow/config/claims.yaml``) lists claims; each names a *test*
and the tables it reads.  Each experiment registers the tests of its tables
with :func:`test` (importing :mod:`rsscale.experiments` registers them all).
A test gets the rows of those tables and its parameters and returns the
measured numbers (as text, with their uncertainty) and a verdict:

* ``supported``: the statement holds by the test's rule;
* ``not supported``: the measurement contradicts it;
* ``inconclusive``: measured, but the uncertainty straddles the rule;
* ``not measured``: the study (config) did not produce the tables it needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rsscale.io import read_rows

VERDICTS = ("supported", "not supported", "inconclusive", "not measured")

Rows = list[dict]
Test = Callable[[dict[str, Rows], dict], tuple[str, str]]
TESTS: dict[str, Test] = {}


def test(name: str):
    """Register a claim test under ``name``."""

    def decorate(func: Test) -> Test:
        TESTS[name] = func
        return func

    return decorate


@test("pending")
def pending_test(tables: dict[str, Rows], params: dict) -> tuple[str, str]:
    """A claim whose experiment the study does not run yet."""
    return params.get("note", "no experiment yet"), "not measured"


def evaluate(ledger: Sequence[dict], table_dir: str | Path) -> Rows:
    """One verdict row per claim of the ledger, reading ``<table_dir>/<table>.csv``."""
    rows = []
    for claim in ledger:
        if claim["test"] not in TESTS:
            raise ValueError(f"claim {claim['id']!r}: unknown test {claim['test']!r}; known: {sorted(TESTS)}")
        paths = {name: Path(table_dir) / f"{name}.csv" for name in claim.get("tables", [])}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            measured, verdict = f"tables not produced by this study: {', '.join(missing)}", "not measured"
        else:
            tables = {name: read_rows(path) for name, path in paths.items()}
            measured, verdict = TESTS[claim["test"]](tables, claim.get("params", {}))
        rows.append({"id": claim["id"], "section": claim["section"], "claim": claim["claim"],
                     "statement": claim["statement"], "measured": measured, "verdict": verdict})
    return rows
