"""Command line: ``rsscale <command>`` or ``python -m rsscale <command>``.

These are the commands the workflow rules call; each turns arguments into
calls of the package and writes result files with provenance sidecars.  Run
``rsscale <command> --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rsscale import experiments, methods
from rsscale.analysis.results import read_run
from rsscale.certificate import CertificateWriter
from rsscale.data import Dataset, load_dataset
from rsscale.experiments import aces as aces_analysis
from rsscale.experiments import incremental, tables
from rsscale.methods.projected import fit_projection
from rsscale.methods.sween import fit_weights
from rsscale.models import build_model, load_checkpoint, save_checkpoint
from rsscale.noise import Gaussian
from rsscale.profiling import profile_throughput
from rsscale.provenance import device_name, utc_now, write_sidecar
from rsscale.sampling import resolve_device
from rsscale.training import build_objective, evaluate_accuracy, fit
from rsscale.training.denoiser import DENOISER_OBJECTIVES, DenoiserObjective, compose, train_denoiser


def _load_models(paths: list[str], dataset: Dataset, data_path: str) -> list[tuple[torch.nn.Module, dict]]:
    """(model, metadata) per checkpoint, each checked against the dataset's input shape and classes."""
    loaded = [load_checkpoint(path) for path in paths]
    for path, (model, _) in zip(paths, loaded, strict=True):
        _check_model_fits(model, dataset, path, data_path)
    return loaded


def _params_file(path: str | None) -> dict:
    """The ``params`` object of a JSON file written by a fitting command (e.g. ``fit-sween``); {} without a file."""
    if path is None:
        return {}
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read method parameters from {path}: {err}") from err
    if not isinstance(content, dict) or not isinstance(content.get("params"), dict):
        raise ValueError(f"{path} must hold a JSON object with a 'params' object, e.g. {{\"params\": {{...}}}}")
    return content["params"]


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON object, got {text!r} ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value


def _setup(args) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if hasattr(args, "device"):
        args.device = str(resolve_device(args.device))


def _seed_for(seed: int, *keys: int) -> int:
    """A seed for one unit of work, derived from the run seed and the unit's position."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _check_model_fits(model, dataset: Dataset, checkpoint: str, data: str) -> None:
    """Refuse a checkpoint whose input shape or class count is not the dataset's (before any output is written)."""
    shape = tuple(getattr(model, "input_shape", ()) or ())
    if shape and shape != tuple(dataset.input_shape):
        raise ValueError(f"checkpoint {checkpoint} takes inputs of shape {shape}, but the dataset {data} "
                         f"has inputs of shape {tuple(dataset.input_shape)}")
    if len(dataset.x_test):
        with torch.no_grad():
            classes = model(dataset.x_test[:1]).shape[-1]
        if classes != dataset.num_classes:
            raise ValueError(f"checkpoint {checkpoint} scores {classes} classes, but the dataset {data} "
                             f"has {dataset.num_classes}")


def _sigma(args, meta: dict) -> float:
    """``--sigma``, else the training sigma the checkpoint records."""
    if args.sigma is not None:
        return args.sigma
    if "sigma" not in meta:
        raise ValueError(f"checkpoint {args.checkpoint} records no training sigma; pass --sigma")
    return meta["sigma"]


def cmd_methods(args) -> None:
    for name in methods.available():
        meta = methods.info(name)
        flag = "sound" if meta.sound else f"NOT SOUND: {meta.unsound_reason}"
        print(f"{name:16s} {flag:10s} {meta.summary}")


def cmd_data(args) -> None:
    dataset = load_dataset(args.dataset, **_json(args.params))
    dataset.save(args.out)
    print(f"{dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test, input {dataset.input_shape}")


def _fit_to_dataset(arch: str, params: dict, dataset: Dataset) -> dict:
    """Fill in (in place) the architecture parameters that the dataset determines: shape, classes, normalisation."""
    shape = dataset.input_shape
    if arch == "cnn":
        params.setdefault("image_size", shape[-1])
        params.setdefault("in_channels", shape[0])
    else:
        params.setdefault("dim", dataset.dim)
        params.setdefault("input_shape", list(shape))
    params.setdefault("num_classes", dataset.num_classes)
    params.setdefault("mean", float(dataset.x_train.mean()))
    params.setdefault("std", float(dataset.x_train.std()))
    return params


def cmd_train(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    arch_params = _json(args.arch_params)
    projected = args.arch == "projected"
    if projected:  # the base network sees the projection onto the top-rank PCA subspace, fitted below
        arch_params.setdefault("dim", dataset.dim)
        base_arch, base_params = arch_params.setdefault("base_arch", "cnn"), arch_params.setdefault("base_config", {})
    else:
        base_arch, base_params = args.arch, arch_params
    _fit_to_dataset(base_arch, base_params, dataset)
    torch.manual_seed(args.seed)  # parameter initialisation
    model = build_model(args.arch, **arch_params)
    if projected:
        model.set_projection(*fit_projection(dataset.x_train, arch_params["rank"]))
    objective = build_objective(args.objective, sigma=args.sigma, **_json(args.objective_params))
    generator = torch.Generator().manual_seed(_seed_for(args.seed, 1))
    report = fit(model, objective, dataset.x_train, dataset.y_train, epochs=args.epochs, batch_size=args.batch_size,
                 lr=args.lr, generator=generator, device=args.device, progress=not args.quiet)
    eval_gen = torch.Generator().manual_seed(_seed_for(args.seed, 2))
    clean = evaluate_accuracy(model, dataset.x_test, dataset.y_test, device=args.device)
    noisy = evaluate_accuracy(model, dataset.x_test, dataset.y_test, args.sigma, eval_gen, device=args.device)
    meta = {"dataset": dataset.name, "sigma": args.sigma, "objective": objective.describe(), "seed": args.seed,
            "training": report.as_dict(), "test_accuracy_clean": clean, "test_accuracy_noisy": noisy}
    sha = save_checkpoint(model.cpu(), args.out, **meta)
    parameters = {k: v for k, v in vars(args).items() if k != "func"}
    write_sidecar(Path(args.out).with_suffix(".json"), parameters, started, args.device, checkpoint_sha256=sha,
                  **meta)
    print(f"trained {args.arch} at sigma={args.sigma}: {report.seconds:.1f} s, "
          f"test accuracy {clean:.3f} clean / {noisy:.3f} under noise")


def cmd_fit_sween(args) -> None:
    """SWEEN's ensemble weights fitted on noisy copies of training examples (members frozen)."""
    started = utc_now()
    dataset = Dataset.load(args.data)
    loaded = _load_models(args.checkpoint, dataset, args.data)
    sigma = _sigma(args, loaded[0][1])
    examples = min(args.max_examples, len(dataset.x_train))
    generator = torch.Generator().manual_seed(_seed_for(args.seed, 0))
    pick = torch.randperm(len(dataset.x_train), generator=generator)[:examples]
    weights = fit_weights([m for m, _ in loaded], dataset.x_train[pick], dataset.y_train[pick], sigma,
                          copies=args.copies, steps=args.steps, generator=generator)
    mixture = torch.softmax(torch.tensor(weights), 0).tolist()
    fit = {"examples": examples, "copies": args.copies, "steps": args.steps, "sigma": sigma, "mixture": mixture}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_sidecar(args.out, {k: v for k, v in vars(args).items() if k != "func"}, started, args.device,
                  params={"weights": weights}, fit=fit,
                  checkpoint_sha256=[meta["sha256"] for _, meta in loaded])
    print(f"sween weights at sigma={sigma} from {examples} training examples x {args.copies} noisy copies: "
          f"mixture {', '.join(f'{a:.3f}' for a in mixture)}")


def cmd_train_denoiser(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    classifier, classifier_meta = load_checkpoint(args.classifier)
    _check_model_fits(classifier, dataset, args.classifier, args.data)
    torch.manual_seed(args.seed)  # the denoiser's initialisation
    model = compose(classifier, args.depth, args.width)
    objective = DenoiserObjective(model.classifier, args.sigma, args.objective, args.mse_epochs)
    generator = torch.Generator().manual_seed(_seed_for(args.seed, 1))
    report = train_denoiser(model, objective, dataset.x_train, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, generator=generator, device=args.device, progress=not args.quiet)
    eval_gen = torch.Generator().manual_seed(_seed_for(args.seed, 2))
    clean = evaluate_accuracy(model, dataset.x_test, dataset.y_test, device=args.device)
    noisy = evaluate_accuracy(model, dataset.x_test, dataset.y_test, args.sigma, eval_gen, device=args.device)
    trained_with = classifier_meta.get("objective")
    meta = {"dataset": dataset.name, "sigma": args.sigma,
            "objective": {**objective.describe(), "depth": args.depth, "width": args.width}, "seed": args.seed,
            "training": report.as_dict(), "test_accuracy_clean": clean, "test_accuracy_noisy": noisy,
            "classifier": {"checkpoint": args.classifier, "sha256": classifier_meta["sha256"],
                           "sigma": classifier_meta.get("sigma"),
                           "objective": (trained_with.get("objective") if isinstance(trained_with, dict)
                                         else trained_with),
                           "train_seconds": classifier_meta.get("training", {}).get("seconds")}}
    sha = save_checkpoint(model.cpu(), args.out, **meta)
    parameters = {k: v for k, v in vars(args).items() if k != "func"}
    write_sidecar(Path(args.out).with_suffix(".json"), parameters, started, args.device, checkpoint_sha256=sha,
                  **meta)
    print(f"trained a denoiser ({args.objective}) at sigma={args.sigma} for {args.classifier}: {report.seconds:.1f} s,"
          f" test accuracy of f(D(x)) {clean:.3f} clean / {noisy:.3f} under noise")


def cmd_certify(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    loaded = _load_models(args.checkpoint, dataset, args.data)
    models_, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    meta = metas[0]
    sigma = _sigma(args, meta)
    params = {**_json(args.params), **_params_file(args.params_file)}
    # several checkpoints make one model list, for the families whose base classifier combines models (ensembles)
    certifier = methods.build(args.method, model=models_[0] if len(models_) == 1 else models_,
                              num_classes=dataset.num_classes, sigma=sigma, device=args.device, **params)
    indices = list(range(0, len(dataset.x_test), args.skip))[: args.max_inputs]
    out = Path(args.out)
    with CertificateWriter(out) as writer:
        todo = [i for i in indices if i not in writer.done]
        bar = tqdm(total=len(indices), initial=len(indices) - len(todo), desc=f"certify {args.method}",
                   unit="input", disable=args.quiet)
        for pos in range(0, len(indices), args.pack):
            chunk = indices[pos : pos + args.pack]
            if all(i in writer.done for i in chunk):
                continue
            generator = torch.Generator().manual_seed(_seed_for(args.seed, pos))
            certs = certifier.certify_many(dataset.x_test[chunk], generator=generator)
            for i, cert in zip(chunk, certs, strict=True):
                if i not in writer.done:
                    writer.write(i, int(dataset.y_test[i]), cert)
                    bar.update(1)
        bar.close()
    parameters = {"method": args.method, "sigma": sigma, "seed": args.seed, "skip": args.skip,
                  "max_inputs": args.max_inputs, "pack": args.pack, "data": args.data,
                  "checkpoint": args.checkpoint[0] if len(args.checkpoint) == 1 else args.checkpoint,
                  **certifier.settings(), "method_params": params, "params_file": args.params_file}
    run = read_run(out)
    info = methods.info(args.method)
    write_sidecar(out.with_suffix(".json"), parameters, started, args.device,
                  checkpoint_sha256=meta["sha256"] if len(metas) == 1 else [m["sha256"] for m in metas],
                  dataset=dataset.name, dataset_meta=dataset.meta,
                  dim=dataset.dim, input_shape=list(dataset.input_shape),
                  sound=info.sound, unsound_reason=info.unsound_reason,
                  summary={"inputs": len(run), "ACR": run.acr(), "clean_accuracy": float(run.correct.mean()),
                           "seconds_median": float(np.median(run.columns["seconds"]))})
    print(f"{args.method} sigma={sigma}: {len(run)} inputs, certified accuracy at r=0 {run.certified_accuracy(0):.3f},"
          f" ACR {run.acr():.3f}")


def cmd_aces(args) -> None:
    """ACES theta sweep: F (the checkpoint) and the core model on test inputs, one sample set per input for all thetas
    (theta = 1, pure RS, always included); one CSV row per (input, theta)."""
    started = utc_now()
    dataset = Dataset.load(args.data)
    model, meta = load_checkpoint(args.checkpoint)
    core, core_meta = load_checkpoint(args.core)
    for path, net in ((args.checkpoint, model), (args.core, core)):
        _check_model_fits(net, dataset, path, args.data)
    sigma = _sigma(args, meta)
    thetas = sorted(set(args.thetas) | {1.0})
    certifier = methods.build("aces", model=model, num_classes=dataset.num_classes, sigma=sigma, core=core,
                              device=args.device, **_json(args.params))
    indices = list(range(0, len(dataset.x_test), args.skip))[: args.max_inputs]
    rows = []
    for pos in tqdm(range(0, len(indices), args.pack), desc="aces", unit="pack", disable=args.quiet):
        chunk = indices[pos : pos + args.pack]
        generator = torch.Generator().manual_seed(_seed_for(args.seed, pos))
        certs = certifier.certify_thetas(dataset.x_test[chunk], thetas, generator)
        rows += aces_analysis.sweep_records(chunk, dataset.y_test[chunk].tolist(), thetas, certs)
    aces_analysis.write_sweep(rows, args.out)
    parameters = {"sigma": sigma, "thetas": thetas, "seed": args.seed, "skip": args.skip, "max_inputs": args.max_inputs,
                  "pack": args.pack, "data": args.data, "checkpoint": args.checkpoint, "core": args.core,
                  **certifier.settings()}
    parameters.pop("theta")
    write_sidecar(Path(args.out).with_suffix(".json"), parameters, started, args.device,
                  checkpoint_sha256=meta["sha256"], core_sha256=core_meta["sha256"], dataset=dataset.name)
    print(f"aces sigma={sigma}: {len(indices)} inputs x {len(thetas)} thetas from one sample set each")


def cmd_profile(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    model, meta = load_checkpoint(args.checkpoint)
    _check_model_fits(model, dataset, args.checkpoint, args.data)
    sigma = _sigma(args, meta)
    device = args.device
    rows = []
    for batch_size in args.batch_sizes:
        profile = profile_throughput(model, dataset.input_shape, Gaussian(sigma), dataset.num_classes, batch_size,
                                     device, batches=args.batches, repeats=args.repeats, seed=args.seed,
                                     **_json(args.engine))
        row = {"model": Path(args.checkpoint).stem, "device": device_name(device), "threads": torch.get_num_threads(),
               **profile.as_dict()}
        rows.append(row)
        print(f"batch {batch_size:6d}: forward-only {profile.forward_samples_per_s:12.0f} samples/s, "
              f"certify {profile.certify_samples_per_s:12.0f} samples/s, ratio certify/forward = {profile.ratio:.3f}")
    columns = list(rows[0])
    tables.write_table(rows, columns, str(args.out).removesuffix(".csv"))
    write_sidecar(Path(args.out).with_suffix(".json"), {k: v for k, v in vars(args).items() if k != "func"},
                  started, device, checkpoint_sha256=meta["sha256"])


def cmd_profile_sizes(args) -> None:
    """The engine profile per model size: untrained models (throughput does not depend on the weights)."""
    started = utc_now()
    dataset = Dataset.load(args.data)
    rows = []
    for label, spec in _json(args.models).items():
        torch.manual_seed(args.seed)  # parameter initialisation
        model = build_model(spec["arch"], **_fit_to_dataset(spec["arch"], dict(spec.get("params", {})), dataset))
        for batch_size in args.batch_sizes:
            profile = profile_throughput(model, dataset.input_shape, Gaussian(args.sigma), dataset.num_classes,
                                         batch_size, args.device, batches=args.batches, repeats=args.repeats,
                                         seed=args.seed, **_json(args.engine))
            rows.append({"model": label, "arch": spec["arch"], "parameters": sum(p.numel() for p in model.parameters()),
                         "weights": "untrained", "device": device_name(args.device),
                         "threads": torch.get_num_threads(), **profile.as_dict()})
            print(f"{label:>12s} batch {batch_size:6d}: forward-only {profile.forward_samples_per_s:12.0f} samples/s,"
                  f" certify {profile.certify_samples_per_s:12.0f} samples/s,"
                  f" ratio certify/forward = {profile.ratio:.3f}")
    columns = ["model", "arch", "parameters", "weights", "batch_size", "forward_samples_per_s", "certify_samples_per_s",
               "ratio", "forward_spread", "certify_spread", "autocast", "channels_last", "compile", "device", "threads"]
    tables.write_table(rows, columns, str(args.out).removesuffix(".csv"),
                       caption="Certification vs forward-only throughput per model size (untrained models)")
    write_sidecar(Path(args.out).with_suffix(".json"), {k: v for k, v in vars(args).items() if k != "func"},
                  started, args.device)


def cmd_incremental(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    model, meta = load_checkpoint(args.checkpoint)
    _check_model_fits(model, dataset, args.checkpoint, args.data)
    sigma = _sigma(args, meta)
    indices = list(range(len(dataset.x_test)))[: args.max_inputs]
    rows, original = incremental.incremental_rows(
        model, dataset.x_test[indices], dataset.y_test[indices].numpy(), dataset.num_classes, sigma,
        args.modifications, args.n0, args.n, args.n_incremental, args.alpha, args.alpha_zeta, args.gamma, args.radii,
        args.batch_size, args.pack, args.seed)
    prefix = str(args.out).removesuffix(".csv")
    tables.write_table(rows, list(rows[0]), prefix, caption="Incremental RS vs certification from scratch")
    write_sidecar(Path(f"{prefix}.json"), {k: v for k, v in vars(args).items() if k != "func"} | {"sigma": sigma},
                  started, "cpu", checkpoint_sha256=meta["sha256"], dataset=dataset.name, original=original)
    print(f"original: {original['seconds']:.1f} s, ACR {original['ACR_original']:.3f}")
    for row in rows:
        print(f"{row['modification']:>10s}: IRS {row['speedup']:.2f}x faster than from scratch "
              f"({row['seconds_irs']:.1f} s vs {row['seconds_scratch']:.1f} s), mean zeta {row['zeta_mean']:.4f} on "
              f"{100 * row['incremental_fraction']:.0f} % of inputs, ACR {row['ACR_irs']:.3f} vs "
              f"{row['ACR_scratch']:.3f}, same decision {100 * row['same_decision']:.0f} %")


def cmd_table(args) -> None:
    """Write an experiment's table through the registry (``rsscale.experiments``)."""
    reference = None if args.reference in (None, "null") else _json(args.reference)
    options = experiments.TableOptions(args.radii, args.linf_radii, reference)
    experiments.get(args.kind).table(args.inputs, args.out, options)


def cmd_figure(args) -> None:
    """Draw an experiment's figure through the registry (``rsscale.experiments``)."""
    experiments.get(args.kind).figure(args.inputs, args.out, experiments.FigureOptions(args.title))


def cmd_harness(args) -> None:
    from rsscale import harness  # the oracles and cases load only for this command
    from rsscale.bounds import check_alpha

    limits = {}
    for item in args.limit:
        key, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--limit expects METHOD/CASE=TRIALS with TRIALS >= 1, got {item!r}")
        limits[key] = int(value)
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    check_alpha(args.alpha)
    rows = harness.run_harness(args.trials, args.methods, args.seed, args.alpha, limits, args.uncapped,
                               report=lambda row: print(harness.format_row(row), flush=True))
    tables.write_table(rows, harness.COLUMNS, args.out,
                       caption=f"Soundness harness: certificates violated on exact oracles (alpha = {args.alpha:g}; "
                               f"rate interval: two-sided 95% Clopper-Pearson; FAIL: its lower end exceeds alpha "
                               f"for a method that claims soundness)")
    failed = [f"{r['method']}/{r['case']} {r['norm']}" for r in rows if r["verdict"] == "FAIL"]
    if failed:
        print(f"rsscale: harness: FAIL: violation rate significantly above alpha = {args.alpha:g} for a method "
              f"claiming soundness: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


def cmd_violations(args) -> None:
    from rsscale import violations  # the oracle and search load only for this command

    settings = _json(args.settings)
    specs = settings.pop("methods", None)
    if not isinstance(specs, dict) or not specs:
        raise ValueError("--settings needs a non-empty 'methods' mapping of label -> method parameters")
    rows = violations.run_violations(specs, seed=args.seed, **settings)
    for row in rows:
        print(violations.format_row(row), flush=True)
    tables.write_table(rows, violations.COLUMNS, args.out,
                       caption="Violation search for input-dependent sigma on the ball oracle: points inside certified "
                               "balls where the smoothed classifier, at the noise the method picks there, says "
                               "another class")


def cmd_claims(args) -> None:
    import yaml

    from rsscale.experiments import claims

    ledger = yaml.safe_load(Path(args.ledger).read_text())
    if not isinstance(ledger, dict) or not isinstance(ledger.get("claims"), list):
        raise ValueError(f"{args.ledger}: expected a mapping with a list under 'claims'")
    rows = claims.evaluate(ledger["claims"], args.tables)
    tables.write_table(rows, list(rows[0]), args.out, caption="Survey claims and their measured verdicts")
    for row in rows:
        print(f"{row['id']:>22s}: {row['verdict']:<14s} {row['measured']}")


def cmd_manifest(args) -> None:
    from rsscale.provenance import build_manifest, write_text_atomic

    record = build_manifest(args.root, args.paths, args.config, exclude=[args.out])
    write_text_atomic(args.out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"manifest: {len(record['files'])} artifacts and {len(record['configs'])} config files -> {args.out}")


def cmd_verify(args) -> None:
    from rsscale.provenance import verify_manifest

    checked, problems = verify_manifest(args.manifest, args.root)
    for line in problems:
        print(f"rsscale: verify: {line}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"verified {checked} files against {args.manifest}")


def _tex_text(value) -> str:
    text = str(value)
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                       ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("^", r"\textasciicircum{}"),
                       ("~", r"\textasciitilde{}")):
        text = text.replace(char, repl)
    return text


def cmd_numbers(args) -> None:
    """``\\newcommand`` macros of the study's settings, read from the run sidecars, for the paper's prose."""
    import re

    def sidecars(paths):
        return [json.loads(Path(p).with_suffix(".json").read_text()) for p in paths]

    def num(value) -> str:
        value = float(value)
        return f"{int(value):,}".replace(",", "{,}") if value.is_integer() and abs(value) >= 1 else f"{value:g}"

    def samples(n) -> str:  # powers of ten as 10^k (text or math mode)
        k = round(np.log10(n)) if n > 0 else 0
        return f"\\ensuremath{{10^{{{k}}}}}" if n >= 100 and 10**k == n else num(n)

    def listing(items) -> str:
        items = list(dict.fromkeys(items))
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    macros = {}
    main = sidecars(args.main)
    first = main[0]["parameters"]
    macros.update(MainDataset=_tex_text(main[0].get("dataset", "")), MainDim=num(main[0].get("dim", 0)),
                  MainNzero=num(first["n0"]), MainN=samples(int(first["n"])), MainAlpha=f"{first['alpha']:g}",
                  MainInputs=num(max(s["summary"]["inputs"] for s in main)), MainModels=num(len(main)),
                  MainSigmas=listing(num(s) for s in sorted(s["parameters"]["sigma"] for s in main)))
    every = list(main)
    if args.sample_count:
        runs = sidecars(args.sample_count)
        every += runs
        macros.update(SampleCountNs=listing(samples(int(n)) for n in sorted(r["parameters"]["n"] for r in runs)),
                      SampleCountSigma=num(runs[0]["parameters"]["sigma"]),
                      SampleCountInputs=num(max(r["summary"]["inputs"] for r in runs)))
    if args.dimension:
        runs = sidecars(args.dimension)
        every += runs
        p = runs[0]["parameters"]
        macros.update(DimNzero=num(p["n0"]), DimN=samples(int(p["n"])), DimSigma=num(p["sigma"]),
                      DimInputs=num(max(r["summary"]["inputs"] for r in runs)),
                      DimNoises=listing(sorted({_tex_text(r["parameters"]["noise"]["name"]) for r in runs})))
        for name in sorted({r.get("dataset", "") for r in runs}):
            group = [r for r in runs if r.get("dataset") == name]
            key = re.sub("[^A-Za-z]", "", name).capitalize()
            dims = sorted(int(r["dim"]) for r in group)
            sides = sorted(int(r["input_shape"][-1]) for r in group)
            macros.update({f"Dim{key}Min": num(dims[0]), f"Dim{key}Max": num(dims[-1]),
                           f"Dim{key}Count": num(len(set(dims))),
                           f"Dim{key}SideMin": num(sides[0]), f"Dim{key}SideMax": num(sides[-1])})
    devices = sorted({s["device"] for s in every})
    cpu = [re.fullmatch(r"(.*) \((\d+) threads\)", d) for d in devices]
    macros["StudyDevice"] = listing(_tex_text(m.group(1) if m else d) for m, d in zip(cpu, devices, strict=True))
    macros["StudyThreads"] = listing(num(t) for t in sorted({s["threads"] for s in every}))
    gpus = [_tex_text(d) for d, m in zip(devices, cpu, strict=True) if not m]
    macros["StudyAccelerator"] = "no GPU" if not gpus else "the GPU " + listing(gpus)
    macros["StudyMachine"] = (f"{macros['StudyThreads']} CPU cores of an {macros['StudyDevice']} processor, no GPU"
                              if not gpus else f"the GPU {listing(gpus)} with {macros['StudyThreads']} CPU threads")
    lines = ["% generated by `rsscale numbers` from the run sidecars; do not edit"]
    lines += [f"\\newcommand{{\\RS{name}}}{{{value}}}" for name, value in macros.items()]
    from rsscale.provenance import write_text_atomic

    write_text_atomic(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines[1:]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsscale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def runtime(p):
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
        p.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    command("methods", cmd_methods, "list the registered method families and whether they are sound")

    p = command("data", cmd_data, "build a dataset file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--params", default="{}", help="JSON object of loader parameters")
    p.add_argument("--out", required=True)

    p = command("train", cmd_train, "train a base classifier")
    p.add_argument("--data", required=True)
    p.add_argument("--arch", default="cnn")
    p.add_argument("--arch-params", default="{}", help="JSON object of architecture parameters")
    p.add_argument("--objective", default="gaussian")
    p.add_argument("--objective-params", default="{}",
                   help='JSON object of objective parameters, e.g. \'{"k": 8}\' for macer (sigma: --sigma)')
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("train-denoiser", cmd_train_denoiser,
                "train a DnCNN denoiser in front of a frozen classifier; writes the composed f(D(x)) checkpoint")
    p.add_argument("--data", required=True)
    p.add_argument("--classifier", required=True, help="checkpoint of the classifier (kept frozen)")
    p.add_argument("--objective", choices=DENOISER_OBJECTIVES, default="mse")
    p.add_argument("--mse-epochs", type=int, default=None,
                   help="MSE epochs before the stability ones (mse_then_stability; default half the epochs)")
    p.add_argument("--sigma", type=float, required=True, help="noise level the denoiser removes")
    p.add_argument("--depth", type=int, default=4, help="DnCNN convolutions")
    p.add_argument("--width", type=int, default=16, help="DnCNN channels")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("certify", cmd_certify, "certify test inputs with a method family; one CSV row per input")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help="one model, or several for the families that combine models (ensemble members)")
    p.add_argument("--method", default="cohen")
    p.add_argument("--sigma", type=float, default=None, help="default: the checkpoint's training sigma")
    p.add_argument("--params", default="{}", help="JSON object of method parameters (n0, n, alpha, ...)")
    p.add_argument("--params-file", default=None,
                   help='JSON file {"params": {...}} merged over --params (e.g. the weights fit-sween wrote)')
    p.add_argument("--skip", type=int, default=1, help="certify every skip-th test input")
    p.add_argument("--max-inputs", type=int, default=None)
    p.add_argument("--pack", type=int, default=10, help="inputs whose samples share forward passes")
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("fit-sween", cmd_fit_sween,
                "fit SWEEN's ensemble weights on noisy training examples; certify reads them with --params-file")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True, nargs="+", help="the ensemble members")
    p.add_argument("--sigma", type=float, default=None, help="default: the first checkpoint's training sigma")
    p.add_argument("--max-examples", type=int, default=500, help="training examples the weights are fitted on")
    p.add_argument("--copies", type=int, default=8, help="Gaussian copies of each example")
    p.add_argument("--steps", type=int, default=300, help="full-batch Adam steps on the weight logits")
    p.add_argument("--out", required=True,
                   help='JSON provenance record holding {"params": {"weights": [...]}, "fit": {...}}')
    runtime(p)

    p = command("aces", cmd_aces, "ACES theta sweep (F = the checkpoint, a core model): a CSV row per input and theta")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True, help="the certification model F (noise-trained)")
    p.add_argument("--core", required=True, help="the core model (accurate, not robust)")
    p.add_argument("--sigma", type=float, default=None, help="default: the checkpoint's training sigma")
    p.add_argument("--thetas", type=float, nargs="+", required=True, help="entropy thresholds in [0, 1]")
    p.add_argument("--params", default="{}", help="JSON object of aces parameters (n0, n, alpha, batch_size)")
    p.add_argument("--skip", type=int, default=1, help="use every skip-th test input")
    p.add_argument("--max-inputs", type=int, default=None)
    p.add_argument("--pack", type=int, default=10, help="inputs whose samples share forward passes")
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("profile", cmd_profile, "certification vs forward-only throughput of a model")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--sigma", type=float, default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--engine", default="{}",
                   help='JSON object of sampling-engine options, e.g. \'{"autocast": "bf16", "channels_last": true,'
                        ' "compile": true}\'')
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("profile-sizes", cmd_profile_sizes,
                "certification vs forward-only throughput of untrained models of several sizes")
    p.add_argument("--data", required=True, help="dataset file: input shape and classes of the models")
    p.add_argument("--models", required=True,
                   help='JSON object label -> {"arch": ..., "params": {...}}, e.g. \'{"cnn-w8": {"arch": "cnn",'
                        ' "params": {"width": 8}}}\'')
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--engine", default="{}", help="JSON object of sampling-engine options (as for profile)")
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("incremental", cmd_incremental,
                "incremental RS: certify a model, then each modification from scratch and with IRS (CPU; one row each)")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True, help="the original model")
    p.add_argument("--sigma", type=float, default=None, help="default: the checkpoint's training sigma")
    p.add_argument("--modifications", nargs="+", default=["int8", "prune0.2", "prune0.5"],
                   help="int8 (dynamic quantization of the linear layers) or prune<fraction> (global L1)")
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=10_000, help="estimation samples of the original and from scratch")
    p.add_argument("--n-incremental", type=int, default=1000, help="replayed samples n_p of IRS (and its fallback)")
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--alpha-zeta", type=float, default=0.001, help="level of the disagreement bound zeta")
    p.add_argument("--gamma", type=float, default=0.99, help="IRS falls back to plain RS below this p_A bound")
    p.add_argument("--radii", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--max-inputs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--pack", type=int, default=10, help="inputs whose selection samples share forward passes")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md, .tex and the .json sidecar are written")
    p.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads")
    p.add_argument("--seed", type=int, default=0)

    p = command("table", cmd_table, "tables from result files (CSV, Markdown, LaTeX)")
    p.add_argument("kind", choices=experiments.base.with_table(), help="the experiment whose table to write")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--radii", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="l2 radii of the certified-accuracy columns")
    p.add_argument("--linf-radii", type=float, nargs="*", default=[0.001, 0.01],
                   help="l_inf radii of the certified-accuracy columns (dimension table)")
    p.add_argument("--reference", default=None,
                   help='JSON {"source": ..., "rows": [{"match": {column: value}, "published": {column: number}}]}: '
                        "published numbers in a <column>_published column after each named column (training-methods, "
                        "denoised, aces tables); null or absent: none")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("claims", cmd_claims, "evaluate the claims ledger against the study's tables")
    p.add_argument("--ledger", required=True, help="YAML file with a list of claims")
    p.add_argument("--tables", default="results/tables", help="folder holding the tables' CSV files")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("figure", cmd_figure, "figures from result files (PDF and PNG)")
    p.add_argument("kind", choices=experiments.base.with_figure(), help="the experiment whose figure to draw")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="path prefix; .pdf and .png are written")
    p = command("harness", cmd_harness, "soundness harness: violation rates of every method on exact oracles")
    p.add_argument("--trials", type=int, required=True, help="trials per case (capped per slow case, see --uncapped)")
    p.add_argument("--methods", nargs="+", default=None, help="registered methods to check (default: all)")
    p.add_argument("--alpha", type=float, default=0.05, help="certification level, and the rate each case is held to")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", action="append", default=[], metavar="METHOD/CASE=TRIALS",
                   help="trials of one case, overriding --trials and its cap (repeatable)")
    p.add_argument("--uncapped", action="store_true", help="ignore the per-case trial caps of the slow cases")
    p.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("violations", cmd_violations,
                "search certified balls of input-dependent-sigma methods for points where g disagrees (ball oracle)")
    p.add_argument("--settings", required=True,
                   help='JSON: {"methods": {label: params}, "dim", "ball_radius", "sigma", "inputs", "far", ...}')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="PyTorch intra-op threads")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("manifest", cmd_manifest,
                "record the sha256 of every artifact under PATHS, the config files, git commit, versions and device")
    p.add_argument("paths", nargs="+", help="files or folders relative to --root, e.g. results figures")
    p.add_argument("--root", default=".", help="folder the recorded paths are relative to")
    p.add_argument("--config", action="append", default=[], help="a config file to record (repeatable)")
    p.add_argument("--out", required=True, help="the manifest (JSON), left out of its own checksums")

    p = command("verify", cmd_verify,
                "recompute a manifest's checksums; exit 1 with one line per changed or missing file")
    p.add_argument("manifest")
    p.add_argument("--root", default=".", help="the folder the manifest was written from")

    p = command("numbers", cmd_numbers, "LaTeX macros of the study's settings (from run sidecars) for the paper")
    p.add_argument("--main", nargs="+", required=True, help="the certified-accuracy runs (CSV; sidecars beside)")
    p.add_argument("--sample-count", nargs="*", default=[], help="the sample-count runs")
    p.add_argument("--dimension", nargs="*", default=[], help="the dimension-sweep runs")
    p.add_argument("--out", required=True, help="the .tex file of \\newcommand macros")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _setup(args)
        for name in ("skip", "pack", "max_inputs", "epochs", "batch_size", "batches", "repeats"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        args.func(args)
    except (ValueError, TypeError, OSError) as err:  # bad input: one line, no traceback, exit status 2
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"rsscale: error: {message or type(err).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
