# Helpers shared by every stage: config validation, the registries of models and
# certification runs the config asks for, and argument quoting.
import json
import shlex

from snakemake.utils import validate


validate(config, schema="../config/schema.yaml")


def as_json(value):
    """A config value as one shell-quoted JSON argument (keys sorted: stable rerun triggers)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


def dataset_spec(name):
    if name not in config["datasets"]:
        raise ValueError(f"unknown dataset {name!r} in the config; defined: {sorted(config['datasets'])}")
    return config["datasets"][name]


# Every model and every certification run of the study, keyed by its output path;
# the rules look their arguments up here, so a new experiment only registers runs.
MODELS = {}
RUNS = {}


def model_for(dataset, sigma):
    """Register (once) the model certified at sigma on a dataset; return its checkpoint path.

    It is trained at sigma unless the dataset's own ``training`` section says otherwise.
    """
    training = {**config["training"], **dataset_spec(dataset).get("training", {})}
    train_sigma = training.get("sigma", sigma)
    model = dataset_spec(dataset).get("model", config["model"])
    path = f"results/models/{dataset}/{training['objective']}_sigma{train_sigma}.pt"
    MODELS[path] = {
        "dataset": dataset,
        "sigma": train_sigma,
        "objective": training["objective"],
        "arch": model["arch"],
        "arch_params": model.get("params", {}),
        "epochs": training["epochs"],
        "batch_size": training["batch_size"],
        "lr": training["lr"],
    }
    return path


def certify_run(dataset, method, sigma, tag, params, max_inputs=None, skip=1, pack=10):
    """Register a certification run; return its CSV path."""
    path = f"results/certify/{dataset}/{method}/{tag}.csv"
    RUNS[path] = {
        "dataset": dataset,
        "model": model_for(dataset, sigma),
        "method": method,
        "sigma": sigma,
        "params": params,
        "max_inputs": max_inputs,
        "skip": skip,
        "pack": pack,
    }
    return path


def cohen_params(n, **extra):
    c = config["cohen"]
    return {"n0": c["n0"], "n": n, "alpha": c["alpha"], "batch_size": c["batch_size"], **extra}


def cohen_run(dataset, sigma, n, max_inputs=None, noise="gaussian"):
    c = config["cohen"]
    inputs = max_inputs or "all"
    tag = f"{noise}_sigma{sigma}_n{n}_{inputs}"
    params = cohen_params(n, noise=noise)
    return certify_run(dataset, "cohen", sigma, tag, params, max_inputs, c["skip"], c["pack"])


MAIN_RUNS = [cohen_run(config["cohen"]["dataset"], s, config["cohen"]["n"], config["cohen"].get("max_inputs"))
             for s in config["sigmas"]]

SAMPLE_COUNT_RUNS = [
    cohen_run(config["cohen"]["dataset"], config["sample_count"]["sigma"], n, config["sample_count"]["max_inputs"])
    for n in config["sample_count"]["ns"]
]

PROFILE_MODELS = [model_for(config["cohen"]["dataset"], s) for s in config["profile"]["sigmas"]]

DIMENSION_RUNS = [
    certify_run(dataset, "cohen", config["dimension"]["sigma"],
                f"{noise}_sigma{config['dimension']['sigma']}_n{config['dimension']['n']}"
                f"_{config['dimension']['max_inputs']}",
                cohen_params(config["dimension"]["n"], noise=noise, n0=config["dimension"]["n0"]),
                config["dimension"]["max_inputs"], 1, config["dimension"]["pack"])
    for dataset in config["dimension"]["datasets"]
    for noise in config["dimension"]["noises"]
] if "dimension" in config else []


def profile_path(model):
    return model.replace("results/models/", "results/profile/").removesuffix(".pt") + ".csv"


def study_outputs():
    tables = ["certified_accuracy", "sample_count", "profile"]
    figures = ["certified_accuracy", "sample_count"]
    if DIMENSION_RUNS:
        tables += ["dimension", "dimension_slopes"]
        figures += ["dimension"]
    return [f"results/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")] + [
        f"figures/{f}.{ext}" for f in figures for ext in ("pdf", "png")
    ]
