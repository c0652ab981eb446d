"""The report's sources use only files the workflow generates: every \\input table and every figure is an output
of some rule (or one of the report's own sections)."""

import re
from pathlib import Path

from rsscale.experiments.views import VIEWS

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"


def rule_outputs() -> str:
    return "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))


def generated_tables() -> set[str]:
    """Table names written by rules: table_outputs("<name>"), multiext("results/tables/<name>", ...),
    results/tables/<name>.tex, or a view of such a table (rule table_view)."""
    text = rule_outputs()
    tables = set(re.findall(r'table_outputs\("([A-Za-z0-9_]+)"\)', text)) | set(
        re.findall(r'results/tables/([A-Za-z0-9_]+)"', text)) | set(
        re.findall(r"results/tables/([A-Za-z0-9_]+)\.tex", text))
    return tables | {name for name, view in VIEWS.items() if view.table in tables}


def generated_figures() -> set[str]:
    return set(re.findall(r'"figures/([A-Za-z0-9_]+)\.pdf"', rule_outputs()))


def source_text(path: Path) -> str:
    """A LaTeX file without its comments."""
    return "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in path.read_text().splitlines())


def used(macro: str) -> set[str]:
    names = set()
    for source in PAPER.rglob("*.tex"):
        names |= set(re.findall(macro + r"(?:\[[^]]*\])?\{([A-Za-z0-9_]+)\}", source_text(source)))
    return names


def test_every_table_and_figure_of_the_report_is_generated():
    tables, figures = used(r"\\rs(?:text|page|appendix)?table"), used(r"\\rsfigure")
    assert tables and figures
    assert tables <= generated_tables(), tables - generated_tables()
    assert figures <= generated_figures(), figures - generated_figures()


def test_the_report_reads_no_other_files():
    """Raw \\input and \\includegraphics only go through the generated-file macros or the report's own sections."""
    sections = {p.stem for p in (PAPER / "sections").glob("*.tex")}
    for source in PAPER.rglob("*.tex"):
        for target in re.findall(r"\\input\{([^}]*)\}", source_text(source)):
            path = target.split()[-1]  # after the \rsroot / \rspaper folder macros
            ok = path in ("results/tables/#1.tex", "results/tables/numbers.tex") or (
                path.startswith("sections/") and path.removeprefix("sections/") in sections)
            assert ok, (source.name, target)
        for target in re.findall(r"\\includegraphics(?:\[[^]]*\])?\{([^}]*)\}", source_text(source)):
            assert re.fullmatch(r"figures/#\d\.pdf", target.split()[-1]), (source.name, target)
