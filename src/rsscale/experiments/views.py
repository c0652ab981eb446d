"""The report's tables: views of the study's complete tables, each the rows and columns that carry one argument.

A study table's CSV keeps every row and column; the report prints a *view* of it: in the body the few rows and
columns a section argues from, in the appendix every row with the columns a reader needs (run bookkeeping such as
the device or the input count left to the CSV).  A view is written like any table (``<view>.csv``, ``.md``,
``.tex``), its LaTeX header broken over lines so that the columns are as narrow as their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsscale.experiments.tables import write_table
from rsscale.io import read_rows


@dataclass(frozen=True)
class View:
    """Rows of ``table`` whose cells are among ``rows[column]`` (as the CSV writes them; every row when ``rows`` is
    empty) and, for each column of ``largest``, at that column's largest value in the table (such as the largest
    batch a study profiled, whatever its config's sizes), with ``columns`` in that order (every column but ``drop``
    when ``columns`` is empty); ``numbers``: cells are rounded like a table's numbers (off for tables of sentences,
    whose cells are text such as section ``3.3``)."""

    table: str
    columns: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    rows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    largest: tuple[str, ...] = ()
    numbers: bool = True

    def columns_of(self, header: list[str]) -> list[str]:
        """The view's columns, given the table's; a view naming a column the table lacks is refused, except a radius
        column (``r=...``) that the study's config does not certify at, which is left out."""
        named = list(self.columns) + list(self.drop) + list(self.rows) + list(self.largest)
        missing = [c for c in named if c not in header and not c.startswith(RADIUS)]
        if missing:
            raise ValueError(f"the view of {self.table!r} names column(s) {missing} that the table lacks; "
                             f"its columns: {header}")
        return [c for c in self.columns if c in header] or [c for c in header if c not in self.drop]

    def select(self, table: list[dict[str, str]]) -> list[dict[str, str]]:
        """The table's rows that the view keeps."""
        top = {column: max(float(row[column]) for row in table) for column in self.largest if table}
        return [row for row in table if all(row[column] in kept for column, kept in self.rows.items())
                and all(float(row[column]) == value for column, value in top.items())]


SUMMARY = "_summary"  # the body's view of a table
RADIUS = "r="  # certified accuracy at a radius: a column per radius of the study's config, shown where it has it
APPENDIX = "_appendix"  # the appendix's view of a table

VIEWS: dict[str, View] = {
    # the verdicts on page two, and the evidence behind each in the appendix
    "claims_verdicts": View("claims", columns=("claim", "section", "result", "threshold", "verdict"),
                            numbers=False),
    "claims" + APPENDIX: View("claims", columns=("id", "statement", "interval", "threshold_source", "details"),
                                 numbers=False),
    # the curse of dimensionality
    "dimension_slopes" + SUMMARY: View("dimension_slopes", columns=(
        "group", "noise", "slope", "slope_se", "theory_if_native_constant"), rows={"norm": ("linf",)}),
    "dimension_slopes" + APPENDIX: View("dimension_slopes"),
    "dimension_remedies" + APPENDIX: View("dimension_remedies", drop=("inputs",)),
    "dimension" + APPENDIX: View("dimension", drop=("inputs",)),
    # the robustness/accuracy trade-off
    "certified_accuracy" + SUMMARY: View("certified_accuracy", drop=("inputs",)),
    "training_methods" + SUMMARY: View("training_methods", columns=(
        "objective", "sigma", "collapsed", "base_clean_accuracy", "ACR", "time_vs_gaussian", "passes_vs_gaussian",
        "ACR_vs_equal_budget"), rows={"variant": ("published recipe",),
                                      "objective": ("gaussian", "consistency", "crt", "macer", "smoothadv")}),
    "training_methods" + APPENDIX: View("training_methods", drop=(
        "inputs", "val_clean_accuracy", "train_passes", "train_seconds", "passes_per_example", "passes_vs_gaussian",
        "ACR_vs_gaussian_low", "ACR_vs_gaussian_high")),
    "denoised" + APPENDIX: View("denoised", drop=("inputs", "classifier_sigma", "clean_accuracy",
                                                  "classifier_train_seconds", "denoiser_train_seconds",
                                                  "denoiser_seconds_per_input")),
    "aces" + APPENDIX: View("aces", drop=("inputs",)),
    # the same over seed replicates
    "seed_objectives" + SUMMARY: View("seed_objectives", columns=(
        "objective", "seeds", "ACR", "ACR_low", "ACR_high", "ACR_vs_gaussian", "ACR_vs_gaussian_low",
        "ACR_vs_gaussian_high", "rank_best", "rank_worst")),
    "seed_objectives" + APPENDIX: View("seed_objectives", columns=(
        "objective", "sigma", "seeds", "collapsed", "r=0", "r=0_by_seed", "ACR", "ACR_low", "ACR_high", "ACR_by_seed",
        "ACR_vs_gaussian", "ACR_vs_gaussian_by_seed", "rank", "rank_by_seed")),
    "seed_sweep" + APPENDIX: View("seed_sweep", drop=("inputs",)),
    # the inference cost
    "sample_count" + SUMMARY: View("sample_count", columns=(
        "n", "forward_passes", "seconds_median", "ACR", "radius_median_certified", "radius_ceiling")),
    "sample_count" + APPENDIX: View("sample_count", drop=("inputs",)),
    "profile" + SUMMARY: View("profile"),
    "inference_cost" + SUMMARY: View("inference_cost", columns=(
        "label", "sound", "forward_passes_mean", "passes_saved_x", "ACR", "r_target", "cert_acc_at_target",
        "same_decision")),
    "inference_cost" + APPENDIX: View("inference_cost", drop=("inputs", "method")),
    "incremental" + SUMMARY: View("incremental", columns=(
        "modification", "speedup", "passes_scratch", "passes_irs", "zeta_mean", "ACR_scratch", "ACR_irs",
        "same_decision")),
    "incremental" + APPENDIX: View("incremental", drop=("inputs", "n", "n_incremental", "passes_scratch",
                                                        "passes_irs", "seconds_scratch", "seconds_irs")),
    "profile_sizes" + SUMMARY: View("profile_sizes", columns=(
        "model", "parameters", "shared_noise", "forward_samples_per_s", "certify_samples_per_s", "ratio"),
        largest=("batch_size",)),
    "profile_sizes" + APPENDIX: View("profile_sizes", drop=("arch", "weights", "device", "threads")),
    "family_cost" + APPENDIX: View("family_cost", drop=("run", "inputs", "device", "threads")),
    # extra information at extra cost
    "extra_information" + SUMMARY: View("extra_information", columns=(
        "method", "sound", "ACR", "ACR_ratio", "ACR_diff_low", "ACR_diff_high", "cost_ratio_evaluations",
        "cost_ratio_seconds")),
    "extra_information" + APPENDIX: View("extra_information", drop=("family", "inputs")),
    "violations" + SUMMARY: View("violations", columns=(
        "method", "sound", "inputs", "certified", "points", "violations", "inputs_violated")),
    "violations" + APPENDIX: View("violations", drop=("inputs", "first_input")),
    # soundness
    "soundness" + APPENDIX: View("soundness", drop=("dim", "alpha", "seconds", "violations_l1", "violations_l2",
                                                   "violations_linf")),
}


def parse(text: str):
    """A CSV cell as the number it writes (so that the view rounds it like the table; a whole number from ten on as
    an integer, such as a pass count), or the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and abs(value) >= 10 else value


def write_view(name: str, table_csv: str | Path, out: str | Path) -> list[Path]:
    """Write the view ``name`` of the table ``table_csv`` as ``out.csv``, ``out.md`` and ``out.tex`` (a header
    without rows when the study has none of the view's rows)."""
    view = VIEWS[name]
    table = read_rows(table_csv, as_text=True)
    header = list(table[0]) if table else Path(table_csv).read_text().splitlines()[0].split(",")
    columns = view.columns_of(header)
    cell = parse if view.numbers else str
    rows = [{c: cell(row[c]) for c in columns} for row in view.select(table)]
    return write_table(rows, columns, out, caption=f"{view.table}: {name}", stacked=True)
