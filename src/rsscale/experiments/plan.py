"""The study's plan: every model and certification run its config asks for, keyed by output path.

The workflow builds one :class:`Plan` from the (validated) config; each experiment's ``runs``
registers what it needs through :meth:`Plan.model` and :meth:`Plan.certify`, and the shared
``train`` and ``certify`` rules look their arguments up in :attr:`Plan.models` and
:attr:`Plan.runs`.  A path asked for twice must be asked for with the same arguments.
"""

from __future__ import annotations

import math

from rsscale import methods


def check_config(config: dict) -> None:
    """What the schema cannot say, checked before any job runs; a ValueError names the key.

    Every number finite; ``n0 <= n`` in every section that has both; every sample count of a section without its
    own ``n0`` (``n``, ``ns``) at least ``cohen.n0``, the selection samples it runs with; every method a config
    names (``extra_information.runs.<tag>.method``, the labels of ``violations.methods``) registered; no sigma
    twice in any list of sigmas.
    """
    _check_values(config, "config")
    n0 = config.get("cohen", {}).get("n0")
    for section, spec in config.items():
        if section == "cohen" or not isinstance(spec, dict) or "n0" in spec or n0 is None:
            continue
        for key in ("n", "ns"):
            for i, n in enumerate(spec.get(key, []) if key == "ns" else [spec.get(key, n0)]):
                if n < n0:
                    where = f"{section}.{key}" + (f"[{i}]" if key == "ns" else "")
                    raise ValueError(f"{where} = {n} is below cohen.n0 = {n0}, the selection samples it runs with")
    runs = config.get("extra_information", {}).get("runs", {})
    named = {f"extra_information.runs.{tag}.method": spec.get("method") for tag, spec in runs.items()}
    named.update({f"violations.methods.{label}": label.split("+")[0]
                  for label in config.get("violations", {}).get("methods", {})})
    for where, method in named.items():
        if method not in methods.available():
            raise ValueError(f"{where}: unknown method {method!r}; available: {', '.join(methods.available())}")


def _check_values(value, where: str) -> None:
    """No NaN or infinite number, n0 <= n where a mapping has both, no duplicate in a list named ``sigmas``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} = {value}: every number in the config must be finite")
    if isinstance(value, dict):
        if "n0" in value and "n" in value and value["n0"] > value["n"]:
            raise ValueError(f"{where}: n0 = {value['n0']} exceeds n = {value['n']} (selection samples must not "
                             f"outnumber estimation samples)")
        sigmas = value.get("sigmas")
        if isinstance(sigmas, list):
            twice = sorted({s for s in sigmas if sigmas.count(s) > 1})
            if twice:
                raise ValueError(f"{where}.sigmas lists {', '.join(map(str, twice))} more than once: {sigmas}")
        for key, item in value.items():
            _check_values(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, f"{where}[{i}]")


class Plan:
    """Models and runs of one study config (a plain dict; nothing here reads files)."""

    def __init__(self, config: dict):
        self.config = config
        self.datasets: dict[str, dict] = dict(config["datasets"])
        self.models: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}

    def dataset(self, name: str) -> dict:
        if name not in self.datasets:
            raise ValueError(f"unknown dataset {name!r} in the config; defined: {sorted(self.datasets)}")
        return self.datasets[name]

    def add_dataset(self, name: str, spec: dict) -> str:
        """Define a dataset the config does not name (e.g. a variant with another model); return its name."""
        self.datasets.setdefault(name, spec)
        return name

    @staticmethod
    def _record(registry: dict, path: str, spec: dict) -> str:
        if registry.setdefault(path, spec) != spec:
            raise ValueError(f"{path} is asked for with two different settings: {registry[path]} and {spec}")
        return path

    def model(self, dataset: str, sigma: float, objective: tuple[str, dict] | None = None,
              seed: int | None = None, training: dict | None = None, label: str | None = None) -> str:
        """The checkpoint path of the model certified at sigma on a dataset (registered once).

        It is trained at sigma unless the dataset's own ``training`` section says otherwise, with the config's
        training objective unless ``objective`` = ``(name, params)`` is given, and with the study's seed unless
        ``seed`` is given (ensemble members differ only in it).  ``training`` overrides the training settings
        (``recipe``, ``lr``, ``batch_size``, ``val_fraction``, ``collapse``; an ``lr`` or ``batch_size`` of None
        leaves it to the recipe; a model two sections ask for with different ``collapse`` settings gets ``fail``);
        ``label`` replaces the objective's name in the file name.
        """
        config = self.config
        spec = self.dataset(dataset)
        training = {**config["training"], **spec.get("training", {}), **(training or {})}
        train_sigma = training.get("sigma", sigma)
        model = spec.get("model", config["model"])
        name, objective_params = objective or (training["objective"], training.get("objective_params", {}))
        suffix = "" if seed is None else f"_seed{seed}"
        path = f"results/models/{dataset}/{label or name}_sigma{train_sigma}{suffix}.pt"
        spec = {
            "seed": config["seed"] if seed is None else seed,
            "dataset": dataset,
            "sigma": train_sigma,
            "objective": name,
            "objective_params": objective_params,
            "arch": model["arch"],
            "arch_params": model.get("params", {}),
            "epochs": training["epochs"],
            "batch_size": training.get("batch_size"),
            "lr": training.get("lr"),
            "recipe": training.get("recipe", "shared"),
            "val_fraction": training.get("val_fraction", 0.1),
            "collapse": training.get("collapse", "fail"),
        }
        known = self.models.get(path)
        if known is not None and {**known, "collapse": spec["collapse"]} == spec:
            # one model, two sections that judge a collapse differently: the stricter gate (fail) holds for both
            known["collapse"] = spec["collapse"] = "fail" if "fail" in (known["collapse"], spec["collapse"]) \
                else "finding"
        return self._record(self.models, path, spec)

    def certify(self, dataset: str, method: str, sigma: float, tag: str, params: dict, max_inputs: int | None = None,
                skip: int = 1, pack: int = 10, objective: tuple[str, dict] | None = None,
                models: str | list[str] | None = None, params_file: str | None = None) -> str:
        """Register a certification run; return its CSV path (``models``: checkpoints other than the model of
        :meth:`model`, e.g. ensemble members; ``params_file``: a JSON file of fitted parameters, made by another
        rule, merged over ``params``).  An unknown method or ``n0 > n`` is refused, naming the run."""
        path = f"results/certify/{dataset}/{method}/{tag}.csv"
        methods.family(method)
        if params.get("n0", 0) > params.get("n", math.inf):
            raise ValueError(f"{path}: n0 = {params['n0']} exceeds n = {params['n']}")
        return self._record(self.runs, path, {
            "dataset": dataset,
            "model": models or self.model(dataset, sigma, objective),
            "method": method,
            "sigma": sigma,
            "params": params,
            "max_inputs": max_inputs,
            "skip": skip,
            "pack": pack,
            "params_file": params_file,
        })

    def cohen_params(self, n: int, **extra) -> dict:
        """Cohen's CERTIFY parameters of the ``cohen`` section at ``n`` estimation samples."""
        c = self.config["cohen"]
        return {"n0": c["n0"], "n": n, "alpha": c["alpha"], "batch_size": c["batch_size"], **extra}

    def cohen_run(self, dataset: str, sigma: float, n: int, max_inputs: int | None = None,
                  noise: str = "gaussian", seed: int | None = None) -> str:
        """A run of Cohen's CERTIFY with the ``cohen`` section's settings (its ``engine`` options included), on the
        model of :meth:`model` (trained from ``seed`` when given: a seed replicate)."""
        c = self.config["cohen"]
        tag = f"{noise}_sigma{sigma}_n{n}_{max_inputs or 'all'}" + ("" if seed is None else f"_seed{seed}")
        params = self.cohen_params(n, noise=noise, **c.get("engine", {}))
        model = None if seed is None else self.model(dataset, sigma, seed=seed)
        return self.certify(dataset, "cohen", sigma, tag, params, max_inputs, c["skip"], c["pack"], models=model)
