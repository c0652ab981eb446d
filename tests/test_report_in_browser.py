"""The quick study's HTML report opened in a real browser (headless Chromium, workflow/scripts/report_screenshot.py).

The report is a JavaScript application: these tests read the DOM the browser rendered, the report's scripts (where
its data sits, whether or not anything renders) removed. Its menu lists every category, the verdicts first, the
Tables category every other table of the run with its CSV, and each figure category the figures the rule files
declare for it, whose eye button displays the figure.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from documented_commands import QUICK, REPO, shell

SCRIPT = REPO / "workflow" / "scripts" / "report_screenshot.py"
VERDICTS = "1. Verdicts"  # the category of the claims table, first in the menu (workflow/rules/common.smk)


def load_script():
    spec = importlib.util.spec_from_file_location("report_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared_figures() -> dict[str, list[str]]:
    """{category: figure paths} as the rule files declare them for the report: ``report("figures/x.png", ...,
    category="...")``."""
    declared = {}
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for path, category in re.findall(r'report\(\s*"(figures/[^"]+)"[^)]*?category="([^"]+)"', rules.read_text()):
            declared.setdefault(category, []).append(path)
    return declared


def rendered(dom: str) -> str:
    """What the application rendered: the page's DOM without its scripts and styles."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)


@pytest.fixture(scope="module")
def report(quick_study_copy):
    script = load_script()
    if script.browser() is None:
        pytest.skip(f"no headless browser on the PATH (one of {', '.join(script.BROWSERS)}; Debian: "
                    "apt-get install chromium)")
    result = shell(f"snakemake --report browser_report.html --configfile {QUICK}", quick_study_copy)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return quick_study_copy / "browser_report.html"


def open_in_browser(report: Path, out: Path, *args: str) -> str:
    """The rendered DOM of the report, opened as the script's arguments say."""
    dom = out / "dom.html"
    subprocess.run([sys.executable, str(SCRIPT), str(report), "--dom", str(dom), *args], check=True, timeout=300)
    return rendered(dom.read_text())


@pytest.mark.slow
def test_the_report_opens_on_its_menu_of_categories(report, tmp_path):
    app = open_in_browser(report, tmp_path, "--png", str(tmp_path / "report.png"))
    menu = re.findall(r"<span>([^<>]+)</span></a>", app)
    categories = [item for item in menu if item not in ("Workflow", "Statistics", "About")]  # Snakemake's own
    assert {*declared_figures(), "Tables", VERDICTS} <= set(categories) and categories[0] == VERDICTS
    screenshot = imread(tmp_path / "report.png")
    assert screenshot.shape[:2] == (1000, 1600) and len(np.unique(screenshot.reshape(-1, screenshot.shape[2]),
                                                                  axis=0)) > 50  # drawn, not a blank page


@pytest.mark.slow
def test_the_tables_category_lists_every_table_with_its_csv(report, quick_study_copy, tmp_path):
    """Every study table (one with a caption: the paper's views of them are not in the report), the claims table
    in its own category."""
    captions = REPO / "workflow" / "report" / "tables"
    tables = sorted(p.stem for p in (quick_study_copy / "results" / "tables").glob("*.csv")
                    if (captions / f"{p.stem}.rst").is_file())
    app = open_in_browser(report, tmp_path, "--category", "Tables")
    assert re.findall(r"<td[^>]*>([^<>]+)</td>", app) == [t for t in tables if t != "claims"]
    assert len(re.findall(r'href="data:text/csv', app)) == len(tables) - 1
    verdicts = open_in_browser(report, tmp_path, "--category", VERDICTS)
    assert re.findall(r"<td[^>]*>([^<>]+)</td>", verdicts) == ["claims"]


@pytest.mark.slow
def test_each_figure_category_lists_its_figures_and_displays_one(report, tmp_path):
    assert declared_figures()
    for category, figures in declared_figures().items():
        shown = figures[-1]
        app = open_in_browser(report, tmp_path, "--category", category, "--show", shown)
        assert sorted(re.findall(r"<td[^>]*>(figures/[^<>]+)</td>", app)) == sorted(figures), category
        assert re.findall(r'<img src="data:image/png;[^"]*filename=([^;"]+);base64,iVBORw0KGgo', app) == [
            Path(shown).name], category
