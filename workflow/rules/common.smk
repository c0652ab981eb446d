# Helpers shared by every stage: config validation, the study's plan of models and certification runs,
# argument quoting and the study's list of outputs.
import json
import os
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rsscale.experiments.plan import Plan, check_config


validate(config, schema="../config/schema.yaml")


check_config(config)


def job_threads():
    """Threads for the jobs that use the whole machine (certify, profile, ...), i.e. every core of the run
    (``--cores``); 1 when the command gives none (``snakemake --report`` or ``--summary``, where nothing runs)."""
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def as_json(value):
    """A config value as one shell-quoted JSON argument (keys sorted: stable rerun triggers)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


# Every model and certification run of the study, keyed by output path: each experiment's rule file registers
# what its config section asks for (``<experiment>.runs(PLAN)``), the shared rules look their arguments up here.
PLAN = Plan(config)


def planned_run(wildcards):
    """The plan's certification run behind a job's wildcards (dataset, method, tag)."""
    return PLAN.runs[f"results/certify/{wildcards.dataset}/{wildcards.method}/{wildcards.tag}.csv"]


def certify_args(run):
    """The arguments of ``rsscale certify`` for a run of the plan."""
    return "--method {method} --sigma {sigma} --params {p} --skip {skip} --pack {pack}{limit}{fitted}".format(
        fitted=f" --params-file {run['params_file']}" if run["params_file"] else "",
        p=as_json(run["params"]),
        limit=f" --max-inputs {run['max_inputs']}" if run["max_inputs"] else "",
        **run,
    )


def train_args(model):
    """The arguments of ``rsscale train`` for a model of the plan (an lr or batch size of None: the recipe's)."""
    args = [
        "--arch {arch} --arch-params {ap} --objective {objective} --objective-params {op} --sigma {sigma}"
        " --epochs {epochs} --recipe {recipe} --val-fraction {val_fraction} --collapse {collapse}".format(
            ap=as_json(model["arch_params"]), op=as_json(model["objective_params"]), **model
        )
    ]
    args.extend(f"--{flag} {model[key]}" for key, flag in (("batch_size", "batch-size"), ("lr", "lr"))
                if model[key] is not None)
    return " ".join(args)


def words(values):
    """A list from the config (radii, thetas, batch sizes, ...) as command-line words."""
    return " ".join(str(v) for v in values)


def out_prefix(wildcards, output):
    """The path prefix of a rule's first output (``results/tables/x.csv`` -> ``results/tables/x``), for the
    commands that write several files from one ``--out`` prefix."""
    return os.path.splitext(output[0])[0]


def partial_rows(wildcards, output):
    """Where a resumable job writes its rows while it runs: results/.partial/<its first output>.  Not an output, so
    Snakemake never deletes it (a failed or killed job, rerun, resumes from it); the job copies it onto its output
    when complete, and discards it, saying so in its log, when it holds rows of another run (``--discard-stale``)."""
    return os.path.join("results", ".partial", os.path.relpath(output[0], "results"))


def table_outputs(name):
    """A table's CSV, Markdown and LaTeX; the CSV in the HTML report when it has a caption
    (``workflow/report/tables/<name>.rst``)."""
    caption = os.path.join(workflow.basedir, "workflow", "report", "tables", f"{name}.rst")
    csv = f"results/tables/{name}.csv"
    if os.path.exists(caption):  # the verdicts open the report (its menu sorts categories by name)
        category = "1. Verdicts" if name == "claims" else "Tables"
        csv = report(csv, caption=caption, category=category, labels={"table": name})
    return [csv, f"results/tables/{name}.md", f"results/tables/{name}.tex"]


# The tables (the claims table aside) and figures this config's study writes: each experiment's rule file adds its own.
STUDY_TABLES = []
STUDY_FIGURES = []


def add_to_study(tables=(), figures=()):
    """Add an experiment's tables (names under results/tables/) and figures (names under figures/) to the study."""
    STUDY_TABLES.extend(tables)
    STUDY_FIGURES.extend(figures)


def study_outputs():
    """Every table (CSV, Markdown, LaTeX) and figure (PDF, PNG) of the study, the claims table included."""
    tables = STUDY_TABLES + ["claims"]
    return [f"results/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")] + [
        f"figures/{f}.{ext}" for f in STUDY_FIGURES for ext in ("pdf", "png")
    ]
