# Helpers shared by every stage: config validation, paths and argument quoting.
import json
import shlex

from snakemake.utils import validate


validate(config, schema="../config/schema.yaml")


def as_json(value):
    """A config value as one shell-quoted JSON argument."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def dataset_spec(name):
    return config["datasets"][name]


def model_path(dataset, objective, sigma):
    return f"results/models/{dataset}/{objective}_sigma{sigma}.pt"


def certify_path(dataset, method, sigma, n, inputs="all"):
    return f"results/certify/{dataset}/{method}/sigma{sigma}_n{n}_{inputs}.csv"


def max_inputs_arg(inputs):
    return "" if inputs == "all" else f"--max-inputs {inputs}"


def main_runs():
    """The certification runs of the main table: one per sigma, the whole test set."""
    c = config["cohen"]
    inputs = c.get("max_inputs") or "all"
    return [certify_path(c["dataset"], "cohen", s, c["n"], inputs) for s in config["sigmas"]]


def sample_count_runs():
    s = config["sample_count"]
    return [
        certify_path(config["cohen"]["dataset"], "cohen", s["sigma"], n, s["max_inputs"]) for n in s["ns"]
    ]


def profile_runs():
    p = config["profile"]
    dataset = config["cohen"]["dataset"]
    return [f"results/profile/{dataset}/sigma{s}.csv" for s in p["sigmas"]]


def study_outputs():
    tables = ["certified_accuracy", "sample_count", "profile"]
    figures = ["certified_accuracy", "sample_count"]
    return [f"results/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")] + [
        f"figures/{f}.{ext}" for f in figures for ext in ("pdf", "png")
    ]
