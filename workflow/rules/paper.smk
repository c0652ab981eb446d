# The replication report: paper/main.tex inputs only generated tables (results/tables/*.tex) and
# figures (figures/*.pdf). Needs a TeX installation with latexmk (not part of the Python environment);
# `snakemake paper/main.pdf --cores 1` builds it. Auxiliary files go to paper/build/.
import os

from rsscale.experiments.views import VIEWS

PAPER_SRC = os.path.join(workflow.basedir, "paper")
PAPER_SOURCES = [os.path.join(PAPER_SRC, "main.tex"), os.path.join(PAPER_SRC, "references.bib")] + sorted(
    os.path.join(PAPER_SRC, "sections", f)
    for f in os.listdir(os.path.join(PAPER_SRC, "sections"))
    if f.endswith(".tex")
)


rule paper_numbers:
    """The study's settings as LaTeX macros (\\RSMainN, \\RSStudyDevice, ...), read from the run sidecars."""
    input:
        main=MAIN_RUNS,
        sample_count=SAMPLE_COUNT_RUNS,
        dimension=DIMENSION_RUNS,
    output:
        "results/tables/numbers.tex",
    params:
        sample_count=lambda w, input: " ".join(["--sample-count", *input.sample_count]) if input.sample_count else "",
        dimension=lambda w, input: " ".join(["--dimension", *input.dimension]) if input.dimension else "",
    conda:
        "../../environment.yml"
    log:
        "logs/paper/numbers.log",
    shell:
        "rsscale numbers --main {input.main} {params.sample_count} {params.dimension} --out {output} > {log} 2>&1"


# the report's views of the study's tables (rsscale.experiments.views): those whose table this study writes
REPORT_VIEWS = [name for name, view in VIEWS.items() if view.table in STUDY_TABLES + ["claims"]]


rule table_view:
    """A table of the report: the rows and columns of a study table that carry one argument."""
    input:
        lambda w: f"results/tables/{VIEWS[w.view].table}.csv",
    output:
        table_outputs("{view}"),
    wildcard_constraints:
        view="|".join(VIEWS),
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/view_{view}.log",
    shell:
        "rsscale view {wildcards.view} --table {input} --out {params.out} > {log} 2>&1"


rule paper:
    """Compile the replication report against this study's tables and figures."""
    input:
        sources=PAPER_SOURCES,
        numbers="results/tables/numbers.tex",
        tables=[p for p in study_outputs() if p.endswith(".tex")],
        views=[f"results/tables/{v}.tex" for v in REPORT_VIEWS],
        figures=[p for p in study_outputs() if p.endswith(".pdf")],
    output:
        "paper/main.pdf",
    params:
        src=lambda w, input: os.path.dirname(input.sources[0]),
    conda:
        "../../environment.yml"
    log:
        "logs/paper/latexmk.log",
    shell:
        "TEXINPUTS={params.src}//: BIBINPUTS={params.src}: latexmk -pdf -interaction=nonstopmode -halt-on-error"
        " -outdir=paper/build {params.src}/main.tex > {log} 2>&1 && cp paper/build/main.pdf {output}"
