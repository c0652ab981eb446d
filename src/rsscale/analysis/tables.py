"""Tables written three ways: CSV (machines), Markdown (README, report), LaTeX (paper)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from rsscale.analysis.results import Run
from rsscale.provenance import atomic_path, write_text_atomic


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "--"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def _latex_escape(text: str) -> str:
    specials = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}"}
    return "".join(specials.get(char, char) for char in text)


def write_table(rows: Sequence[dict], columns: Sequence[str], prefix: str | Path, caption: str = "",
                digits: int = 3) -> list[Path]:
    """Write ``rows`` as ``prefix.csv``, ``prefix.md`` and ``prefix.tex``; return the paths."""
    paths = [Path(f"{prefix}{ext}") for ext in (".csv", ".md", ".tex")]
    with atomic_path(paths[0]) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    cells = [[_cell(row[c], digits) for c in columns] for row in rows]
    markdown = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    markdown += ["| " + " | ".join(line) + " |" for line in cells]
    if caption:
        markdown = [f"*{caption}*", ""] + markdown
    write_text_atomic(paths[1], "\n".join(markdown) + "\n")
    latex = [r"\begin{tabular}{" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(_latex_escape(c) for c in columns) + r" \\", r"\midrule"]
    latex += [" & ".join(_latex_escape(c) for c in line) + r" \\" for line in cells]
    latex += [r"\bottomrule", r"\end{tabular}"]
    write_text_atomic(paths[2], "\n".join(latex) + "\n")
    return paths


def certified_accuracy_rows(runs: Sequence[Run], radii: Sequence[float], key: str = "sigma") -> list[dict]:
    """Cohen et al.-style rows: one per run (by ``key``), certified accuracy at each radius, ACR."""
    rows = []
    for run in sorted(runs, key=lambda r: r.parameters.get(key, 0)):
        row = {key: run.parameters.get(key), "inputs": len(run)}
        row.update({f"r={r:g}": run.certified_accuracy(r) for r in radii})
        row["ACR"] = run.acr()
        rows.append(row)
    return rows
