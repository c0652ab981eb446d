"""The study's plan: every model and certification run its config asks for, keyed by output path.

The workflow builds one :class:`Plan` from the (validated) config; each experiment's ``runs``
registers what it needs through :meth:`Plan.model` and :meth:`Plan.certify`, and the shared
``train`` and ``certify`` rules look their arguments up in :attr:`Plan.models` and
:attr:`Plan.runs`.  A path asked for twice must be asked for with the same arguments.
"""

from __future__ import annotations


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
              seed: int | None = None) -> str:
        """The checkpoint path of the model certified at sigma on a dataset (registered once).

        It is trained at sigma unless the dataset's own ``training`` section says otherwise, with the config's
        training objective unless ``objective`` = ``(name, params)`` is given, and with the study's seed unless
        ``seed`` is given (ensemble members differ only in it).
        """
        config = self.config
        spec = self.dataset(dataset)
        training = {**config["training"], **spec.get("training", {})}
        train_sigma = training.get("sigma", sigma)
        model = spec.get("model", config["model"])
        name, objective_params = objective or (training["objective"], training.get("objective_params", {}))
        suffix = "" if seed is None else f"_seed{seed}"
        return self._record(self.models, f"results/models/{dataset}/{name}_sigma{train_sigma}{suffix}.pt", {
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
        })

    def certify(self, dataset: str, method: str, sigma: float, tag: str, params: dict, max_inputs: int | None = None,
                skip: int = 1, pack: int = 10, objective: tuple[str, dict] | None = None,
                models: str | list[str] | None = None, params_file: str | None = None) -> str:
        """Register a certification run; return its CSV path (``models``: checkpoints other than the model of
        :meth:`model`, e.g. ensemble members; ``params_file``: a JSON file of fitted parameters, made by another
        rule, merged over ``params``)."""
        return self._record(self.runs, f"results/certify/{dataset}/{method}/{tag}.csv", {
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
                  noise: str = "gaussian") -> str:
        """A run of Cohen's CERTIFY with the ``cohen`` section's settings (its ``engine`` options included)."""
        c = self.config["cohen"]
        tag = f"{noise}_sigma{sigma}_n{n}_{max_inputs or 'all'}"
        params = self.cohen_params(n, noise=noise, **c.get("engine", {}))
        return self.certify(dataset, "cohen", sigma, tag, params, max_inputs, c["skip"], c["pack"])
