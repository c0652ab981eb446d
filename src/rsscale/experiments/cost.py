"""The cost of a study before it runs: jobs, forward passes, training passes and projected wall-clock per rule.

Counts come from the config alone: :class:`rsscale.experiments.plan.Plan` filled by every experiment's ``runs`` (as the
workflow's rule files fill it) gives the models and certification runs; the rules that run no model of the study
(soundness harness, mutation suite, violation search) are projected from the seconds their committed reference tables
record.  A certification run costs ``inputs x passes per input``; each family's passes per input follow its own cost
accounting (:func:`certify_passes`).  Projected seconds of a job are

    overhead + forward passes / (certify samples/s) + training passes / (training samples/s)

with the rates of the job's model measured by a short probe (:func:`probe_rates`, about a second per model) or read
from a committed throughput table, and ``overhead`` a measured per-job start (Python, imports, data load).
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rsscale import methods
from rsscale.experiments.plan import Plan, check_config
from rsscale.io import read_rows
from rsscale.training.recipes import published

#: Rules of the study that only write tables, figures, macros or the manifest: one job each, fixed overhead only.
REPORT_RULES = "report"

#: Image/vector facts of the datasets the loaders fetch (train size, test size, input shape, classes); the embedded
#: ones (digits, synthetic) are computed from their parameters.
DOWNLOADED = {"mnist": (60_000, 10_000, (1, 28, 28), 10), "cifar10": (50_000, 10_000, (3, 32, 32), 10)}
DIGITS = 1797  # scikit-learn's digits: 1,797 images, 10 classes


@dataclass
class Job:
    """One job of the workflow: its rule, output, the model whose rates price it, and its passes."""

    rule: str
    output: str
    model: str | None = None
    forward_passes: int = 0
    training_passes: int = 0
    reference_seconds: float = 0.0
    threads: str = "all"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class DatasetFacts:
    num_train: int
    num_test: int
    input_shape: tuple[int, ...]
    num_classes: int


def dataset_facts(spec: dict) -> DatasetFacts:
    """Sizes and input shape of a dataset of the config, without building it."""
    name, params = spec["name"], spec.get("params", {})
    if name == "digits":
        from rsscale.data import load_digits
        defaults = {k: p.default for k, p in inspect.signature(load_digits).parameters.items()}
        p = {**defaults, **params}
        test = math.ceil(DIGITS * p["test_fraction"])  # scikit-learn's split rounds the test size up
        return DatasetFacts(DIGITS - test, test, (1, p["resolution"], p["resolution"]), 10)
    if name == "synthetic":
        from rsscale.data import make_synthetic
        defaults = {k: p.default for k, p in inspect.signature(make_synthetic).parameters.items()}
        p = {**defaults, **params}
        return DatasetFacts(p["num_train"], p["num_test"], (p["dim"],), p["num_classes"])
    if name in DOWNLOADED:
        train, test, shape, classes = DOWNLOADED[name]
        if name == "mnist" and "resolution" in params:
            shape = (1, params["resolution"], params["resolution"])
        return DatasetFacts(train, test, shape, classes)
    raise ValueError(f"dataset {name!r}: its size is not known before it is loaded (plannable: digits, synthetic, "
                     f"{', '.join(DOWNLOADED)})")


def _family_settings(method: str, params: dict) -> dict:
    """A family's parameters with its constructor's defaults filled in."""
    signature = inspect.signature(methods.family(method).__init__)
    return {**{k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty},
            **params}


def certify_passes(method: str, params: dict, members: int = 1) -> tuple[int, int, str]:
    """(forward passes, differentiable passes, note) per input of a certification run, from each family's own
    accounting (its module docstring): n0 + n for Cohen's CERTIFY and the families that reuse it; DSRS draws n samples
    of each of its two distributions (n0 + 2n); ensembles and SWEEN evaluate every member on every sample (the
    consensus variant's early stop makes this a worst case); Smooth-Reduce evaluates grid^2 patches per sample;
    QCRS adds 2 steps n_search search passes; DDRS and ANCER add steps n_opt differentiable passes (forward and
    backward); the adaptive Horvath strategy draws n0 selection samples per stage.  Data-dependent families (ISS,
    adaptive) are priced at their worst case, the full budget n0 + n."""
    s = _family_settings(method, params)
    passes, extra, note = s["n0"] + s["n"], 0, ""
    if method == "dsrs":
        passes = s["n0"] + 2 * s["n"]
    elif method in ("ensemble", "sween"):
        passes *= members
        note = f"{members} members per sample" + (" (worst case)" if method == "ensemble" and s.get("consensus")
                                                   or method == "sween" else "")
    elif method == "smooth_reduce":
        passes *= s["grid"] ** 2
        note = f"{s['grid'] ** 2} patches per sample"
    elif method == "qcrs":
        passes += 2 * s["steps"] * s["n_search"]
        note = "radius search 2 steps n_search"
    elif method in ("ddrs", "ancer"):
        extra = s["steps"] * s["n_opt"]
        note = "sigma optimisation steps n_opt (forward + backward)"
    elif method == "adaptive" and s.get("strategy") == "horvath":
        passes = len(s["stages"]) * s["n0"] + s["n"]
        note = "worst case: every stage run"
    elif method in ("adaptive", "iss", "iss_sound"):
        note = "worst case: the whole budget"
    return passes, extra, note


def training_passes_per_example(objective: str, params: dict) -> int:
    """Forward+backward passes per training example of an objective (each objective's ``passes_per_example``)."""
    from rsscale.training import build_objective
    if "teacher" in params:  # a checkpoint path, not needed to count passes: a stand-in module
        params = {**params, "teacher": torch.nn.Identity()}
    info = build_objective(objective, sigma=0.25, **params).describe()["passes_per_example"]
    return max(info.get("forward", 1), info.get("backward", 1))


def denoiser_passes_per_example(objective: str) -> int:
    """Passes per example of a denoiser objective's costliest stage (:data:`rsscale.training.denoiser
    .PASSES_PER_EXAMPLE`; ``mse_then_stability`` priced as stability throughout: an upper bound)."""
    from rsscale.training.denoiser import PASSES_PER_EXAMPLE
    stage = PASSES_PER_EXAMPLE["mse" if objective == "mse" else "stability"]
    return max(stage["forward"], stage["backward"])


def _key(arch: str, params: dict, facts: DatasetFacts, **extra) -> str:
    """The pricing key of a model: architecture, its parameters and the input it sees (JSON, sorted)."""
    return json.dumps({"arch": arch, "params": params, "shape": list(facts.input_shape), "classes": facts.num_classes,
                       **extra}, sort_keys=True)


def _inputs(facts: DatasetFacts, skip: int, max_inputs: int | None) -> int:
    """How many test inputs a run certifies (:func:`rsscale.run.input_indices`)."""
    return len(range(0, facts.num_test, skip)[:max_inputs])


def study_jobs(config: dict, reference: str | Path = "workflow/baseline/default") -> list[Job]:
    """Every job the workflow runs for ``config`` (a validated study config), with its passes; in the order of the
    workflow's rule files.  The ``all`` target itself is not a job that costs anything and is left out; the oracle
    rules are priced from the tables under ``reference`` (the committed default baseline)."""
    from rsscale.experiments import (
        aces,
        certified_accuracy,
        denoised,
        dimension,
        extra_information,
        incremental,
        inference_cost,
        profile,
        remedies,
        sample_count,
        seed_replicates,
        training_methods,
    )
    check_config(config)
    plan = Plan(config)
    cohen = config["cohen"]
    certified_accuracy.runs(plan)
    sample_count.runs(plan)
    profiles = profile.runs(plan)
    dims, remedy, dsrs = dimension.runs(plan), remedies.runs(plan), remedies.dsrs_runs(plan)
    cost_runs, training = inference_cost.runs(plan), training_methods.runs(plan)
    extra = extra_information.runs(plan)
    seed_sweep, seed_objectives = seed_replicates.sweep_runs(plan), seed_replicates.objective_runs(plan)
    sweeps, denoised_runs, denoisers = aces.sweeps(plan), denoised.runs(plan), denoised.denoisers(plan)
    if config.get("incremental"):
        incremental.model(plan)
    facts = {name: dataset_facts(spec) for name, spec in plan.datasets.items()}

    def model_key(path: str) -> str:
        if path in denoisers:
            d = denoisers[path]
            classifier = plan.models[d["classifier"]]
            return _key(classifier["arch"], classifier["arch_params"], facts[classifier["dataset"]],
                        denoiser={"depth": d["depth"], "width": d["width"]})
        m = plan.models[path]
        return _key(m["arch"], m["arch_params"], facts[m["dataset"]])

    jobs = [Job("data", f"results/data/{name}.pt", threads="1")
            for name in sorted({m["dataset"] for m in plan.models.values()} | {r["dataset"] for r in plan.runs.values()}
                               | {cohen["dataset"]})]
    for path, m in plan.models.items():
        params = m["objective_params"]
        if m.get("recipe") == "published":  # the recipe's own hyperparameters, the config's merged over them
            params = published(m["objective"], m["epochs"], objective_params=params or None).objective_params
        per = training_passes_per_example(m["objective"], params)
        num_train = facts[m["dataset"]].num_train
        fit_examples = num_train - round(m.get("val_fraction", 0.0) * num_train)  # the held-out part aside
        jobs.append(Job("train", path, model_key(path), training_passes=m["epochs"] * fit_examples * per,
                        threads="1"))
    for path, d in denoisers.items():
        per = denoiser_passes_per_example(d["objective"])
        jobs.append(Job("train_denoiser", path, model_key(path), threads="1",
                        training_passes=d["epochs"] * facts[plan.models[d["classifier"]]["dataset"]].num_train * per))
    if config.get("extra_information", {}).get("runs") and any(
            r.get("fit_weights") for r in config["extra_information"]["runs"].values()):
        fit = {"max_examples": 500, "copies": 8, **config["extra_information"].get("sween_fit", {})}
        members = extra_information.members(plan)
        jobs.append(Job("fit_sween_weights", extra_information.sween_weights(config), model_key(members[0]),
                        forward_passes=fit["max_examples"] * fit["copies"] * len(members),
                        notes=["members' logits on noisy copies"]))
    for path, run in plan.runs.items():
        models = run["model"] if isinstance(run["model"], list) else [run["model"]]
        passes, diff, note = certify_passes(run["method"], run["params"], len(models))
        n = _inputs(facts[run["dataset"]], run["skip"], run["max_inputs"])
        jobs.append(Job("certify", path, model_key(models[0]), forward_passes=n * passes, training_passes=n * diff,
                        notes=[note] if note else []))
    prof = config["profile"]
    per_batch_size = (prof["batches"] * (prof["repeats"] + 2)) * 2  # forward-only and certify, two warm-up repeats
    for path in profiles:
        model = path.replace("results/profile/", "results/models/").replace(".csv", ".pt")
        jobs.append(Job("profile", path, model_key(model), forward_passes=sum(prof["batch_sizes"]) * per_batch_size))
    sizes = prof.get("sizes")
    if sizes:
        base = facts[cohen["dataset"]]
        per = sizes["batches"] * (sizes["repeats"] + 2) * (1 + len(sizes.get("variants", [{}])))
        for m in sizes["models"].values():
            jobs.append(Job("profile_sizes", "results/tables/profile_sizes.csv", _key(m["arch"], m.get(
                "params", {}), base), forward_passes=sum(prof["batch_sizes"]) * per))
    for path, sweep in sweeps.items():
        spec = config["aces"]
        n = _inputs(facts[spec["dataset"]], spec.get("skip", 1), spec["max_inputs"])
        jobs.append(Job("aces_sweep", path, model_key(sweep["model"]), forward_passes=n * (spec["n0"] + spec["n"] + 1)))
    if config.get("incremental"):
        spec = config["incremental"]
        once = cohen["n0"] + spec["n"]
        n = _inputs(facts[cohen["dataset"]], 1, spec["max_inputs"])
        jobs.append(Job("incremental", "results/tables/incremental.csv", model_key(incremental.model(plan)),
                        forward_passes=n * (once + len(spec["modifications"]) * (once + spec["n_incremental"])),
                        notes=["original once, each modification from scratch and incrementally"]))
    cost_spec = config.get("extra_information", {}).get("cost")
    if extra and cost_spec:  # every extra-information run on the same inputs, one warm-up and the timed rounds
        per_input = 0
        for path in extra:
            run = plan.runs[path]
            members = len(run["model"]) if isinstance(run["model"], list) else 1
            per_input += certify_passes(run["method"], run["params"], members)[0]
        jobs.append(Job("family_cost", "results/tables/family_cost.csv", model_key(plan.runs[extra[0]]["model"]),
                        forward_passes=cost_spec["inputs"] * (cost_spec["rounds"] + 1) * per_input))
    jobs += _oracle_jobs(config, Path(reference))
    report = 2 + 2 + 1 + 2 * bool(dims) + 2 * bool(remedy) + bool(dsrs) + 2 * bool(cost_runs) + 2 * bool(training) \
        + 2 * bool(extra) + 2 * bool(sweeps) + bool(denoised_runs) + 2 * bool(seed_sweep) + 2 * bool(seed_objectives) \
        + 3  # + claims, paper_numbers, manifest
    jobs += [Job(REPORT_RULES, f"table/figure/claims/manifest job {i + 1}", threads="1") for i in range(report)]
    return jobs


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{path}: the committed reference table that prices this rule is missing")
    return read_rows(path, text_columns=("method", "case", "model", "arch"))


def _oracle_jobs(config: dict, reference: Path) -> list[Job]:
    """The rules that run exact oracles, not the study's models: their reference tables record seconds per case
    (per method for the violation search); scaled to this config's trials (soundness) and inputs (violations),
    restricted to the config's methods (mutation, violations).  Reference forward passes: trials x n per position."""
    jobs = []
    if "soundness" in config:
        rows = _rows(reference / "soundness.csv")
        scale = config["soundness"]["trials"] / max(int(r["trials"]) for r in rows)
        cases = {(r["method"], r["case"]): float(r["seconds"]) for r in rows}
        jobs.append(Job("soundness_harness", "results/tables/soundness.csv", threads="1",
                        reference_seconds=scale * sum(cases.values()),
                        forward_passes=round(scale * sum(int(r["trials"]) * int(r["n"]) for r in rows)),
                        notes=[f"{len(cases)} cases from {reference / 'soundness.csv'} x {scale:.3g} trials"]))
    if "mutation" in config:
        wanted = config["mutation"].get("methods")
        rows = [r for r in _rows(reference / "mutation.csv") if not wanted or r["method"] in wanted]
        jobs.append(Job("mutation_suite", "results/tables/mutation.csv", threads="1",
                        reference_seconds=sum(float(r["seconds"]) for r in rows),
                        notes=[f"{len(rows)} mutants from {reference / 'mutation.csv'}"]))
    if "violations" in config:
        spec = config["violations"]
        rows = [r for r in _rows(reference / "violations.csv") if r["method"] in spec["methods"]]
        seconds = sum(float(r["seconds"]) * spec["inputs"] / int(r["inputs"]) for r in rows)
        passes = sum(spec["inputs"] * certify_passes(label.split("+")[0], params)[0]
                     for label, params in spec["methods"].items())
        jobs.append(Job("violation_search", "results/tables/violations.csv", threads="1", reference_seconds=seconds,
                        forward_passes=passes, notes=[f"{len(rows)} methods from {reference / 'violations.csv'}"]))
    return jobs


@dataclass
class Rates:
    """Samples per second of one model: certification (noisy forward passes, vote counting) and training
    (forward + backward); where they come from."""

    certify: float
    train: float
    source: str


def build_probe_model(key: str) -> torch.nn.Module:
    """An untrained model of a pricing key (throughput does not depend on the weights)."""
    from rsscale import models
    spec = json.loads(key)
    arch, shape = spec["arch"], tuple(spec["shape"])

    def fitted(arch, params, shape):
        stand_in = type("Shape", (), {"input_shape": shape, "dim": math.prod(shape), "num_classes": spec["classes"],
                                      "x_train": torch.rand((4, *shape), generator=torch.Generator().manual_seed(0))})
        return models.fit_to_dataset(arch, dict(params), stand_in)

    if arch == "projected":  # the base model sees the projected input, in the input's own shape
        p = spec["params"]
        base = fitted(p["base_arch"], p.get("base_config", {}), shape)
        return models.build_model(arch, base_arch=p["base_arch"], base_config=base, rank=p["rank"],
                                  dim=math.prod(shape))
    params = fitted(arch, spec["params"], shape)
    if "denoiser" in spec:
        return models.DenoisedClassifier(arch, params, spec["denoiser"])
    return models.build_model(arch, **params)


def probe_rates(key: str, batch_size: int, train_batch_size: int, device: str, threads: int) -> Rates:
    """Measure one model: the certification rate (:func:`rsscale.profiling.profile_throughput`, packs of 10, one
    batch per repeat) at ``threads`` threads, and forward + backward examples/s of SGD steps at one thread (the
    training rule's)."""
    from rsscale.noise import Gaussian
    from rsscale.profiling import profile_throughput, time_call
    model = build_probe_model(key)
    spec = json.loads(key)
    shape, classes = tuple(spec["shape"]), spec["classes"]
    torch.set_num_threads(threads)
    certify = profile_throughput(model, shape, Gaussian(0.25), classes, batch_size, device, batches=1, repeats=3,
                                 warmup=1, pack=min(10, batch_size)).certify_samples_per_s
    torch.set_num_threads(1)
    device_ = torch.device(device)
    model = model.to(device_).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((train_batch_size, *shape), generator=gen).to(device_)
    y = torch.randint(0, classes, (train_batch_size,), generator=gen).to(device_)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def steps():
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x + 0.25 * torch.randn_like(x)), y).backward()
            optimizer.step()

    steps()
    train = 3 * train_batch_size / min(time_call(steps, device_) for _ in range(3))
    torch.set_num_threads(threads)
    return Rates(certify, train, "probe")


def probe_overhead(repeats: int = 2) -> float:
    """Seconds a job spends before its first pass: a Python start importing the package's command line."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import rsscale.cli, rsscale.data, sklearn.datasets"], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def reference_rates(key: str, table: str | Path, batch_size: int) -> Rates:
    """Rates of a model from a committed throughput table (``rsscale profile-sizes`` output, e.g.
    ``figures/gpu_h200/sizes_digits32_fp32.csv``): the row of the same architecture whose parameter count is nearest
    (log scale), at the batch size nearest ``batch_size``.  The table holds no training rate: forward + backward is
    priced at three forward passes (the backward pass about twice the forward's), an assumption the output states."""
    rows = _rows(Path(table))
    model = build_probe_model(key)
    arch = json.loads(key)["arch"]
    count = sum(p.numel() for p in model.parameters())
    same = [r for r in rows if r["arch"] == arch] or rows
    best = min(same, key=lambda r: (abs(math.log(int(r["parameters"]) / count)),
                                    abs(math.log(int(r["batch_size"]) / batch_size))))
    certify = float(best["certify_samples_per_s"])
    return Rates(certify, certify / 3, f"{Path(table).name}: {best['model']} at batch {best['batch_size']}")


def project(jobs: list[Job], rates: dict[str, Rates], overhead: float) -> None:
    """Fill ``Job.seconds``: overhead + passes / rates (+ reference seconds of the oracle rules)."""
    for job in jobs:
        r = rates.get(job.model)
        job.seconds = overhead + job.reference_seconds
        if r:
            job.seconds += job.forward_passes / r.certify + job.training_passes / r.train


def wall_clock(jobs: list[Job], cores: int) -> float:
    """Projected wall-clock with ``cores`` cores: the jobs that take every core (certify, profile, ...) one after
    another, the one-thread jobs (training, oracles, data, reports) ``cores`` at a time; waits on dependencies are
    not modelled."""
    return sum(j.seconds for j in jobs if j.threads == "all") + sum(j.seconds for j in jobs if j.threads == "1") / cores


def summary(jobs: list[Job], cores: int, limit_seconds: float | None = None) -> list[dict]:
    """One row per rule and a total: jobs, forward passes, training passes, projected seconds (summed over its
    jobs), and with a limit the shards (ceil(job seconds / limit), summed) of the certification jobs."""
    rows = {}
    for job in jobs:
        row = rows.setdefault(job.rule, {"rule": job.rule, "jobs": set(), "forward_passes": 0, "training_passes": 0,
                                         "seconds": 0.0, "shards": 0, "notes": set()})
        row["jobs"].add(job.output)
        row["forward_passes"] += job.forward_passes
        row["training_passes"] += job.training_passes
        row["seconds"] += job.seconds
        row["notes"].update(job.notes)
        if limit_seconds and job.rule == "certify":
            row["shards"] += math.ceil(job.seconds / limit_seconds)
    out = [{**row, "jobs": len(row["jobs"]), "notes": "; ".join(sorted(row["notes"]))} for row in rows.values()]
    total = {"rule": "total", "jobs": sum(r["jobs"] for r in out), "notes": f"wall-clock on {cores} cores: "
             f"{wall_clock(jobs, cores):.0f} s"}
    for column in ("forward_passes", "training_passes", "seconds", "shards"):
        total[column] = sum(r[column] for r in out)
    return out + [total]


DEVICES = ("cpu", "cuda", "h200")
#: The committed reference throughputs of a named device that this machine cannot probe.
REFERENCE_TABLES = {"h200": "figures/gpu_h200/sizes_digits32_fp32.csv"}


def calibrate(jobs: list[Job], config: dict, device: str, threads: int, reference: str | Path | None = None
              ) -> tuple[dict[str, Rates], float, str]:
    """Rates of every model the jobs use and the per-job overhead, by probe on ``device`` (``cpu``/``cuda``), or
    from ``reference`` (a committed throughput table; the default one for ``h200``); and a line saying which."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    reference = reference or REFERENCE_TABLES.get(device)
    if reference is None and device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda': no CUDA device here to probe (name a reference table with --reference)")
    batch, train_batch = config["cohen"]["batch_size"], config["training"]["batch_size"]
    keys = sorted({j.model for j in jobs if j.model})
    start = time.perf_counter()
    if reference:
        rates = {k: reference_rates(k, reference, batch) for k in keys}
        how = f"reference throughputs {reference} (training: 3 forward passes per example); overhead probed here"
    else:
        rates = {k: probe_rates(k, batch, train_batch, device, threads) for k in keys}
        how = f"probe on {device} at {threads} threads ({len(keys)} models)"
    overhead = probe_overhead()
    return rates, overhead, f"{how}, {time.perf_counter() - start:.1f} s; per-job overhead {overhead:.2f} s"


def load_study_config(path: str | Path) -> dict:
    """A study config file, validated against the schema beside it (``schema.yaml``) and :func:`check_config`;
    a ValueError names what is wrong."""
    import jsonschema
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a study config must be a mapping, got {type(config).__name__}")
    schema = path.parent / "schema.yaml"
    if schema.is_file():
        try:
            jsonschema.validate(config, yaml.safe_load(schema.read_text()))
        except jsonschema.ValidationError as err:
            where = ".".join(map(str, err.absolute_path)) or "config"
            raise ValueError(f"{path}: {where}: {err.message}") from None
    check_config(config)
    return config


PLAN_COLUMNS = ["rule", "jobs", "forward_passes", "training_passes", "seconds", "shards", "notes"]
