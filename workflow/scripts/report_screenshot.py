"""Open a Snakemake HTML report in headless Chromium: a PNG screenshot of what a reader sees, and its rendered DOM.

    python workflow/scripts/report_screenshot.py report.html --png report.png
    python workflow/scripts/report_screenshot.py report.html --category Trade-off \
        --show figures/certified_accuracy.png --png docs/images/report_screenshot.png --dom dom.html

The report is a JavaScript application (React) in one file: Chromium (Debian's ``chromium``, or the program named
by $CHROMIUM) runs it under a virtual-time budget, so the page is captured once rendered. ``--category`` opens that
category of results as a reader clicking it in the menu would, and ``--show`` then clicks the eye button of the
result of that name, which displays it.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run after the report's own scripts: wait for the application, open a category, click a result's eye button.
NAVIGATE = """<script>
(function navigate(category, show, tries) {
  if (typeof app === "undefined" || app === undefined || !document.querySelector("#app nav")) {
    if (tries > 0) setTimeout(() => navigate(category, show, tries - 1), 50);
    return;
  }
  app.showCategory(category);
  if (show) setTimeout(() => {
    const row = [...document.querySelectorAll("#app tr")].find((tr) => tr.cells[0].textContent.trim() === show);
    row?.querySelector("a[iconname='eye']")?.click();
  }, 100);
})(%s, %s, 200);
</script>
</body>"""


def browser() -> str | None:
    """The headless browser to use: $CHROMIUM, or the first of BROWSERS on the PATH (None when there is none)."""
    candidates = [os.environ["CHROMIUM"]] if os.environ.get("CHROMIUM") else BROWSERS
    return next((found for name in candidates if (found := shutil.which(name))), None)


def chromium(program: str, page: Path, *args: str, budget_ms: int = 10_000) -> subprocess.CompletedProcess:
    """Chromium headless on a local page: ``args`` say what it writes (``--screenshot=...``, ``--dump-dom``)."""
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state from an earlier run
        command = [program, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *args, page.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_to_open(report: Path, category: str | None, show: str | None, workdir: Path) -> Path:
    """The report itself, or a copy whose last script opens a category (and displays one of its results)."""
    if category is None:
        return report
    html = report.read_text()
    head, tail = html.rsplit("</body>", 1)
    page = workdir / report.name
    page.write_text(head + NAVIGATE % (json.dumps(category), json.dumps(show)) + tail)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the report (snakemake --report report.html)")
    parser.add_argument("--png", type=Path, help="write a screenshot here")
    parser.add_argument("--dom", type=Path, help="write the rendered DOM (HTML) here")
    parser.add_argument("--category", help="open this category of results (e.g. Tables)")
    parser.add_argument("--show", help="display this result of the category (its name as listed, e.g. figures/x.png)")
    parser.add_argument("--size", default="1600,1000", help="window width,height in pixels (default %(default)s)")
    args = parser.parse_args(argv)
    if not (args.png or args.dom):
        parser.error("nothing to write: give --png, --dom or both")
    if args.show and not args.category:
        parser.error("--show needs the --category that lists the result")
    program = browser()
    if program is None:
        sys.exit(f"no headless browser: none of {', '.join(BROWSERS)} is on the PATH (or set $CHROMIUM)")
    with tempfile.TemporaryDirectory() as workdir:
        page = page_to_open(args.report, args.category, args.show, Path(workdir))
        if args.png:
            args.png.parent.mkdir(parents=True, exist_ok=True)
            chromium(program, page, f"--screenshot={args.png.resolve()}", f"--window-size={args.size}")
        if args.dom:
            args.dom.write_text(chromium(program, page, "--dump-dom").stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
