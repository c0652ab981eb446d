#!/usr/bin/env python3
"""Compare the tables of two runs of the study: identical except wall-clock.

    python workflow/scripts/compare_tables.py BASELINE NEW

BASELINE and NEW are folders of table CSVs (a run's ``results/tables``, or a frozen copy such as
``workflow/baseline/quick``).  Every CSV of BASELINE must exist in NEW with the same columns and the
same rows, cell for cell as text, after dropping the wall-clock columns (their names match
``WALL_CLOCK``: seconds, samples per second, speed-ups and ratios of them).  In the claims table only
the ``verdict`` column is compared, and not for the claims whose verdicts rest on wall-clock
(``WALL_CLOCK_CLAIMS``): their ``measured`` text quotes timings.  Tables that exist only in NEW are
listed, not failed (a new experiment may add one).

Exit status 0 when every table matches, 1 otherwise; one line per table either way.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

#: Column names whose values are wall-clock measurements, or ratios and spreads of them.
WALL_CLOCK = re.compile(r"(second|time|_per_s$|spread|speedup|wall|hours|radius_to_sampling|^ratio$|^us_per_"
                        r"|method_share|^per_evaluation_ratio$)")
#: Claims of ``workflow/config/claims.yaml`` whose verdict is decided (in part) by wall-clock.
WALL_CLOCK_CLAIMS = {"cost-linear-in-n", "dsrs-beats-np", "irs-cheaper", "macer-cheaper"}


def is_wall_clock(column: str) -> bool:
    return bool(WALL_CLOCK.search(column))


def read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def comparable(name: str, header: list[str], rows: list[dict[str, str]]) -> tuple[list[str], list[tuple]]:
    """The columns and rows that must be identical between two runs."""
    if name == "claims":
        rows = [r for r in rows if r.get("id") not in WALL_CLOCK_CLAIMS]
        columns = [c for c in ("id", "verdict") if c in header]
    else:
        columns = [c for c in header if not is_wall_clock(c)]
    return columns, [tuple(r.get(c, "") for c in columns) for r in rows]


def compare(baseline: Path, new: Path) -> list[str]:
    """One message per table that differs (empty: all identical); prints one line per table."""
    problems = []
    for old_path in sorted(baseline.glob("*.csv")):
        name = old_path.stem
        new_path = new / old_path.name
        if not new_path.is_file():
            problems.append(f"{name}: missing in {new}")
            print(f"MISSING   {name}")
            continue
        old_columns, old_rows = comparable(name, *read(old_path))
        new_columns, new_rows = comparable(name, *read(new_path))
        if old_columns != new_columns:
            problems.append(f"{name}: columns {old_columns} -> {new_columns}")
            print(f"COLUMNS   {name}: {sorted(set(old_columns) ^ set(new_columns))}")
            continue
        if old_rows != new_rows:
            diffs = [(i, c, a, b) for i, (ra, rb) in enumerate(zip(old_rows, new_rows, strict=False))
                     for c, a, b in zip(old_columns, ra, rb, strict=True) if a != b]
            detail = f"{len(old_rows)} -> {len(new_rows)} rows" if len(old_rows) != len(new_rows) else ""
            first = "; ".join(f"row {i} {c}: {a} -> {b}" for i, c, a, b in diffs[:3])
            problems.append(f"{name}: {detail} {first}".strip())
            print(f"DIFFERS   {name}: {detail} {first}")
            continue
        dropped = [c for c in read(old_path)[0] if c not in old_columns]
        print(f"identical {name} ({len(old_rows)} rows, {len(old_columns)} columns"
              + (f"; not compared: {', '.join(dropped)})" if dropped else ")"))
    for extra in sorted(set(p.name for p in new.glob("*.csv")) - set(p.name for p in baseline.glob("*.csv"))):
        print(f"new       {Path(extra).stem} (not in the baseline)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path, help="folder of the baseline's table CSVs")
    parser.add_argument("new", type=Path, help="folder of the new run's table CSVs")
    args = parser.parse_args(argv)
    for folder in (args.baseline, args.new):
        if not folder.is_dir():
            parser.error(f"{folder} is not a folder")
    problems = compare(args.baseline, args.new)
    print(f"{len(problems)} table(s) differ" if problems else "all tables identical (wall-clock aside)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
