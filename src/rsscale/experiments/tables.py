"""Tables written three ways: CSV (machines), Markdown (README, report), LaTeX (paper)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rsscale.io import write_csv_atomic, write_text_atomic


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "--"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def latex_escape(text) -> str:
    """``text`` (any value, as ``str``) safe in LaTeX text mode."""
    specials = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}"}
    return "".join(specials.get(char, char) for char in str(text))


def stacked_header(column: str, width: int = 8) -> str:
    """A LaTeX header cell that breaks a long column name at its underscores into lines of about ``width``
    characters (``ACR_vs_equal_budget`` -> ``ACR vs / equal / budget``), so that a header is no wider than its
    numbers."""
    lines: list[str] = []
    for word in column.split("_"):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return latex_escape(column) if len(lines) == 1 else r"\shortstack{" + r"\\".join(map(latex_escape, lines)) + "}"


def write_table(rows: Sequence[dict], columns: Sequence[str], prefix: str | Path, caption: str = "",
                digits: int = 3, shown: Sequence[str] | None = None, stacked: bool = False) -> list[Path]:
    """Write ``rows`` as ``prefix.csv`` (every column), ``prefix.md`` and ``prefix.tex`` (the ``shown`` columns, by
    default every one: the Markdown and LaTeX tables are for reading); return the paths.  ``stacked``: the LaTeX
    header breaks long column names over lines (:func:`stacked_header`).

    Rows lacking a column (result files of another kind) are refused before any file is written.
    """
    missing = sorted({c for row in rows for c in columns if c not in row})
    if missing:
        raise ValueError(f"the table's inputs lack the column(s) {', '.join(missing)}: are they result files of "
                         f"this table's runs?")
    paths = [Path(f"{prefix}{ext}") for ext in (".csv", ".md", ".tex")]
    write_csv_atomic(paths[0], rows, columns)
    columns = list(shown or columns)
    cells = [[_cell(row[c], digits) for c in columns] for row in rows]
    markdown = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    markdown += ["| " + " | ".join(line) + " |" for line in cells]
    if caption:
        markdown = [f"*{caption}*", ""] + markdown
    write_text_atomic(paths[1], "\n".join(markdown) + "\n")
    latex = [r"\begin{tabular}{" + "r" * len(columns) + "}", r"\toprule",
             " & ".join((stacked_header if stacked else latex_escape)(c) for c in columns) + r" \\", r"\midrule"]
    latex += [" & ".join(latex_escape(c) for c in line) + r" \\" for line in cells]
    latex += [r"\bottomrule", r"\end{tabular}"]
    write_text_atomic(paths[2], "\n".join(latex) + "\n")
    return paths


PUBLISHED = "_published"


def _same(cell, wanted) -> bool:
    """A table cell equals a reference's match value (numbers compared as floats, to rounding)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (cell, wanted))
    return math.isclose(float(cell), float(wanted), rel_tol=1e-9, abs_tol=1e-12) if numbers else cell == wanted


def check_reference(reference: dict, columns: Sequence[str]) -> None:
    """Refuse a reference that is not ``{"source": str, "rows": [{"match": {...}, "published": {...}}, ...]}`` or
    names a column the table does not have (in a ``match`` or a ``published`` mapping)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("source"), str) \
            or not isinstance(reference.get("rows"), list):
        raise ValueError(f"a reference must be {{'source': str, 'rows': [...]}}, got {reference!r}")
    for entry in reference["rows"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("match"), dict)
                and isinstance(entry.get("published"), dict)):
            raise ValueError(f"each reference row must be {{'match': {{...}}, 'published': {{...}}}}, got {entry!r}")
        unknown = sorted(set(entry["match"]).union(entry["published"]).difference(columns))
        if unknown:
            raise ValueError(f"reference row {entry!r} names columns {unknown} that the table lacks; "
                             f"its columns: {list(columns)}")


def attach_reference(rows: Sequence[dict], reference: dict | None) -> list[dict]:
    """Published numbers next to measured ones: the table rows with a ``<column>_published`` column right after
    each column that some reference row names in ``published``.

    A reference row fills those columns in every table row whose cells equal its ``match`` values; cells of rows
    no reference row matches stay empty.  Without a reference (None) the rows come back unchanged, so a study
    without published numbers keeps its columns.
    """
    if reference is None or not rows:
        return list(rows)
    columns = list(rows[0])
    check_reference(reference, columns)
    named = {column for entry in reference["rows"] for column in entry["published"]}
    out = []
    for row in rows:
        published = {column: "" for column in named}
        for entry in reference["rows"]:
            if all(_same(row[key], value) for key, value in entry["match"].items()):
                published.update(entry["published"])
        extended = {}
        for column in columns:
            extended[column] = row[column]
            if column in named:
                extended[column + PUBLISHED] = published[column]
        out.append(extended)
    return out


def reference_caption(caption: str, reference: dict | None) -> str:
    """``caption`` with the reference's source appended (the Markdown caption of a table with published columns)."""
    if reference is None:
        return caption
    return "; ".join(part for part in (caption, f"published: {reference['source']}") if part)


def write_rows(rows: Sequence[dict], out: str | Path, caption: str = "", reference: dict | None = None) -> None:
    """Write a table whose columns are its rows' keys, with the published columns of ``reference``; print it."""
    rows = attach_reference(rows, reference)
    write_table(rows, list(rows[0]), out, caption=reference_caption(caption, reference))
    print(Path(f"{out}.md").read_text())
