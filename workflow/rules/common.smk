# Helpers shared by every stage: config validation, the registries of models and
# certification runs the config asks for, and argument quoting.
import json
import math
import os
import shlex

from snakemake.utils import validate


validate(config, schema="../config/schema.yaml")


def check_config(value, where="config"):
    """What the schema cannot say: no NaN or infinite number anywhere, and n0 <= n in every section that has both."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} = {value}: every number in the config must be finite")
    if isinstance(value, dict):
        if "n0" in value and "n" in value and value["n0"] > value["n"]:
            raise ValueError(f"{where}: n0 = {value['n0']} exceeds n = {value['n']} (selection samples must not "
                             f"outnumber estimation samples)")
        for key, item in value.items():
            check_config(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_config(item, f"{where}[{i}]")


check_config(config)


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


def model_for(dataset, sigma, objective=None, seed=None):
    """Register (once) the model certified at sigma on a dataset; return its checkpoint path.

    It is trained at sigma unless the dataset's own ``training`` section says otherwise, with
    the config's training objective unless ``objective`` = ``(name, params)`` is given, and
    with the study's seed unless ``seed`` is given (ensemble members differ only in it).
    """
    training = {**config["training"], **dataset_spec(dataset).get("training", {})}
    train_sigma = training.get("sigma", sigma)
    model = dataset_spec(dataset).get("model", config["model"])
    name, objective_params = objective or (training["objective"], training.get("objective_params", {}))
    suffix = "" if seed is None else f"_seed{seed}"
    path = f"results/models/{dataset}/{name}_sigma{train_sigma}{suffix}.pt"
    MODELS[path] = {
        "seed": config["seed"] if seed is None else seed,
        "dataset": dataset,
        "sigma": train_sigma,
        "objective": name,
        "objective_params": objective_params,
        "arch": model["arch"],
        "arch_params": model.get("params", {}),
        "epochs": training["epochs"],
        "batch_size": training["batch_size"],
        "lr": training["lr"],
    }
    return path


def certify_run(dataset, method, sigma, tag, params, max_inputs=None, skip=1, pack=10, objective=None, models=None,
                params_file=None):
    """Register a certification run; return its CSV path (``models``: several checkpoints, for ensembles;
    ``params_file``: a JSON file of fitted parameters, made by another rule, merged over ``params``)."""
    path = f"results/certify/{dataset}/{method}/{tag}.csv"
    RUNS[path] = {
        "dataset": dataset,
        "model": models or model_for(dataset, sigma, objective),
        "method": method,
        "sigma": sigma,
        "params": params,
        "max_inputs": max_inputs,
        "skip": skip,
        "pack": pack,
        "params_file": params_file,
    }
    return path


def cohen_params(n, **extra):
    c = config["cohen"]
    return {"n0": c["n0"], "n": n, "alpha": c["alpha"], "batch_size": c["batch_size"], **extra}


def cohen_run(dataset, sigma, n, max_inputs=None, noise="gaussian"):
    c = config["cohen"]
    inputs = max_inputs or "all"
    tag = f"{noise}_sigma{sigma}_n{n}_{inputs}"
    params = cohen_params(n, noise=noise, **c.get("engine", {}))  # engine: autocast/channels_last/compile (GPU configs)
    return certify_run(dataset, "cohen", sigma, tag, params, max_inputs, c["skip"], c["pack"])


MAIN_RUNS = [cohen_run(config["cohen"]["dataset"], s, config["cohen"]["n"], config["cohen"].get("max_inputs"))
             for s in config["sigmas"]]

SAMPLE_COUNT_RUNS = [
    cohen_run(config["cohen"]["dataset"], config["sample_count"]["sigma"], n, config["sample_count"]["max_inputs"])
    for n in config["sample_count"]["ns"]
]

PROFILE_MODELS = [model_for(config["cohen"]["dataset"], s) for s in config["profile"]["sigmas"]]

def dimension_run(dataset, method, label, **params):
    """Register one certification of the dimension sweep."""
    dim = config["dimension"]
    n = params.pop("n", dim["n"])
    tag = f"{label}_sigma{dim['sigma']}_n{n}_{dim['max_inputs']}"
    params = cohen_params(n, n0=dim["n0"], **params)
    return certify_run(dataset, method, dim["sigma"], tag, params, dim["max_inputs"], 1, dim["pack"])


def projected_dataset(dataset, rank):
    """Register (once) the dataset whose model is the PCA-projected version of the dataset's model."""
    name = f"{dataset}-pca{rank}"
    spec = dataset_spec(dataset)
    base = spec.get("model", config["model"])
    model = {"arch": "projected", "params": {"rank": rank, "base_arch": base["arch"],
                                             "base_config": base.get("params", {})}}
    config["datasets"].setdefault(name, {**spec, "model": model})
    return name


DIMENSION = config.get("dimension")
DIMENSION_RUNS = [
    dimension_run(dataset, "cohen", noise, noise=noise)
    for dataset in DIMENSION["datasets"]
    for noise in DIMENSION["noises"]
] if DIMENSION else []

# the remedies: plain Gaussian RS, DSRS (with NP on its P samples) and projected RS at every d
REMEDY_RUNS = []
if DIMENSION and ("dsrs" in DIMENSION or "projected" in DIMENSION):
    REMEDY_RUNS += [dimension_run(dataset, "cohen", "gaussian", noise="gaussian") for dataset in DIMENSION["datasets"]]
    if "dsrs" in DIMENSION:
        dsrs = DIMENSION["dsrs"]
        REMEDY_RUNS += [
            dimension_run(dataset, "dsrs", dsrs["secondary"], **dsrs)
            for dataset in DIMENSION["datasets"]
        ]
    if "projected" in DIMENSION:
        rank = DIMENSION["projected"]["rank"]
        REMEDY_RUNS += [
            dimension_run(projected_dataset(dataset, rank), "projected", "gaussian")
            for dataset in DIMENSION["projected"]["datasets"]
        ]
    REMEDY_RUNS = list(dict.fromkeys(REMEDY_RUNS))


def dsrs_run(secondary):
    """One run of the DSRS comparison section (NP comes from the same P samples)."""
    c = config["dsrs"]
    extra = {"sigma_q": c["sigma_q"]} if secondary == "scaled" and "sigma_q" in c else {}
    if secondary == "truncated" and "truncation" in c:
        extra = {"truncation": c["truncation"]}
    if c.get("k"):
        extra["k"] = c["k"]
    params = {"n0": c["n0"], "n": c["n"], "alpha": c["alpha"], "batch_size": c.get("batch_size", 1000),
              "secondary": secondary, **extra}
    inputs = c.get("max_inputs") or "all"
    tag = f"{secondary}_sigma{c['sigma']}_n{c['n']}_{inputs}"
    return certify_run(c["dataset"], "dsrs", c["sigma"], tag, params, c.get("max_inputs"), c["skip"], c["pack"])


DSRS_RUNS = [dsrs_run(secondary) for secondary in config["dsrs"]["secondaries"]] if "dsrs" in config else []


def profile_path(model):
    return model.replace("results/models/", "results/profile/").removesuffix(".pt") + ".csv"


# the engine profile per model size (profile.sizes): untrained models of several sizes on the cohen dataset
PROFILE_SIZES = config["profile"].get("sizes")


# the inference cost: ISS and adaptive certification next to the sample-count sweep (same model and inputs)
COST = config.get("inference_cost")
COST_RUNS = []
if COST:
    _sweep = config["sample_count"]
    _n_max = max(_sweep["ns"])

    def cost_run(method, tag, **params):
        return certify_run(config["cohen"]["dataset"], method, _sweep["sigma"],
                           f"{tag}_sigma{_sweep['sigma']}_n{_n_max}_{_sweep['max_inputs']}",
                           {"n": _n_max, "alpha": config["cohen"]["alpha"], "batch_size": config["cohen"]["batch_size"],
                            **params}, _sweep["max_inputs"], config["cohen"]["skip"], config["cohen"]["pack"])

    if "iss" in COST:
        COST_RUNS += [cost_run(method, method, **COST["iss"]) for method in ("iss", "iss_sound")]
    if "adaptive" in COST:
        _adaptive = {k: v for k, v in COST["adaptive"].items() if k not in ("strategies", "r_targets")}
        COST_RUNS += [
            cost_run("adaptive", f"{strategy}_r{r}", strategy=strategy, r_target=r, **_adaptive)
            for strategy in COST["adaptive"]["strategies"]
            for r in COST["adaptive"]["r_targets"]
        ]


# RS-aware training: one model per (objective, sigma), each certified with Cohen's CERTIFY
TRAINING = config.get("training_methods")


def training_objective(name, sigma):
    """``(name, params)`` of a training_methods objective at sigma; a ``teacher`` that names another objective
    (CRT distils from it) becomes the checkpoint of that objective's model at the same sigma."""
    params = dict(TRAINING["objectives"][name] or {})
    if params.get("teacher") in TRAINING["objectives"]:
        params["teacher"] = model_for(TRAINING["dataset"], sigma, training_objective(params["teacher"], sigma))
    return name, params


TRAINING_RUNS = [
    certify_run(TRAINING["dataset"], "cohen", sigma,
                f"gaussian_sigma{sigma}_n{TRAINING['n']}_{TRAINING['max_inputs']}_{objective}",
                cohen_params(TRAINING["n"]), TRAINING["max_inputs"], TRAINING.get("skip", 1), config["cohen"]["pack"],
                objective=training_objective(objective, sigma))
    for objective in TRAINING["objectives"]
    for sigma in TRAINING["sigmas"]
] if TRAINING else []


# extra information at extra cost (local information, ensembles, input-specific sigma): each family
# next to Cohen's CERTIFY on the same model, inputs and n; ensembles combine the main model with
# members trained the same way from other seeds
EXTRA = config.get("extra_information")
EXTRA_RUNS = []
if EXTRA:

    EXTRA_MEMBERS = [model_for(EXTRA["dataset"], EXTRA["sigma"])] + [
        model_for(EXTRA["dataset"], EXTRA["sigma"], seed=config["seed"] + k) for k in range(1, EXTRA["members"])
    ]
    SWEEN_WEIGHTS = f"results/sween/{EXTRA['dataset']}/weights_sigma{EXTRA['sigma']}.json"

    def extra_run(tag, method, ensemble=False, fit_weights=False, **params):
        return certify_run(EXTRA["dataset"], method, EXTRA["sigma"],
                           f"{tag}_sigma{EXTRA['sigma']}_n{EXTRA['n']}_{EXTRA['max_inputs']}",
                           cohen_params(EXTRA["n"], **params), EXTRA["max_inputs"], 1, config["cohen"]["pack"],
                           models=EXTRA_MEMBERS if ensemble else None,
                           params_file=SWEEN_WEIGHTS if fit_weights else None)

    EXTRA_RUNS = [extra_run("baseline", "cohen")] + [
        extra_run(tag, **spec) for tag, spec in EXTRA["runs"].items()
    ]


# ACES: F = the main study's Gaussian-trained model at each sigma, core = the same architecture trained without
# noise; one theta-sweep file per sigma
ACES = config.get("aces")
ACES_PARAMS = {"n0": ACES["n0"], "n": ACES["n"], "alpha": config["cohen"]["alpha"],
               "batch_size": config["cohen"]["batch_size"]} if ACES else {}
ACES_SWEEPS = {
    f"results/aces/{ACES['dataset']}/sigma{sigma}.csv": {"model": model_for(ACES["dataset"], sigma),
                                                         "core": model_for(ACES["dataset"], 0.0)}
    for sigma in ACES["sigmas"]
} if ACES else {}


def table_outputs(name):
    """A table's CSV (in the HTML report, with the caption ``workflow/report/tables/<name>.rst``), Markdown and LaTeX."""
    caption = os.path.join(workflow.basedir, "workflow", "report", "tables", f"{name}.rst")
    return [report(f"results/tables/{name}.csv", caption=caption, category="Tables", labels={"table": name}),
            f"results/tables/{name}.md", f"results/tables/{name}.tex"]


# denoised smoothing: a classifier trained without noise, certified bare and behind DnCNN denoisers trained for
# each (sigma, objective) in front of it, next to the main study's Gaussian-trained model on the same inputs
DENOISED = config.get("denoised")
DENOISERS = {}  # composed checkpoint path -> its train-denoiser arguments


def denoised_runs(spec):
    """Register the runs of the denoised-smoothing table; return their CSV paths."""
    dataset, c = spec["dataset"], config["cohen"]
    clean = model_for(dataset, 0.0)
    params = cohen_params(spec["n"])
    runs = []
    for sigma in spec["sigmas"]:
        tag = f"sigma{sigma}_n{spec['n']}_{spec['max_inputs']}"
        runs.append(certify_run(dataset, "cohen", sigma, f"clean_{tag}", params, spec["max_inputs"], c["skip"],
                                c["pack"], models=clean))
        for objective in spec["objectives"]:
            path = f"results/models/{dataset}/denoised/{objective}_sigma{sigma}.pt"
            DENOISERS[path] = {"classifier": clean, "objective": objective, "sigma": sigma,
                               **{k: spec[k] for k in ("depth", "width", "epochs", "batch_size", "lr")}}
            runs.append(certify_run(dataset, "denoised", sigma, f"{objective}_{tag}", params, spec["max_inputs"],
                                    c["skip"], c["pack"], models=path))
        # the Gaussian-trained model: the main study's run when it covers these inputs (the table keeps the shared ones)
        main = dataset == c["dataset"] and sigma in config["sigmas"] and spec["n"] == c["n"]
        runs.append(cohen_run(dataset, sigma, spec["n"], c.get("max_inputs") if main else spec["max_inputs"]))
    return runs


DENOISED_RUNS = denoised_runs(DENOISED) if DENOISED else []


def study_tables():
    """Names of the tables this config's study writes (the claims table aside)."""
    tables = ["certified_accuracy", "sample_count", "profile"]
    if DIMENSION_RUNS:
        tables += ["dimension", "dimension_slopes"]
    if DSRS_RUNS:
        tables += ["dsrs"]
    if REMEDY_RUNS:
        tables += ["dimension_remedies"]
    if TRAINING_RUNS:
        tables += ["training_methods"]
    if "soundness" in config:
        tables += ["soundness"]
    if COST_RUNS:
        tables += ["inference_cost"]
    if DENOISED_RUNS:
        tables += ["denoised"]
    if "violations" in config:
        tables += ["violations"]
    if EXTRA_RUNS:
        tables += ["extra_information"]
    if "incremental" in config:
        tables += ["incremental"]
    if ACES_SWEEPS:
        tables += ["aces"]
    if PROFILE_SIZES:
        tables += ["profile_sizes"]
    return tables


def study_figures():
    figures = ["certified_accuracy", "sample_count"]
    if DIMENSION_RUNS:
        figures += ["dimension"]
    if REMEDY_RUNS:
        figures += ["dimension_remedies"]
    if TRAINING_RUNS:
        figures += ["training_tradeoff"]
    if COST_RUNS:
        figures += ["cost_frontier"]
    if EXTRA_RUNS:
        figures += ["extra_information"]
    if ACES_SWEEPS:
        figures += ["aces_tradeoff"]
    return figures


def study_outputs():
    tables = study_tables() + ["claims"]
    return [f"results/tables/{t}.{ext}" for t in tables for ext in ("csv", "md", "tex")] + [
        f"figures/{f}.{ext}" for f in study_figures() for ext in ("pdf", "png")
    ]
