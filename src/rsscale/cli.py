"""Command line: ``rsscale <command>`` or ``python -m rsscale <command>``.

These are the commands the workflow rules call; each parses its arguments,
calls the library function that does the work (and writes the result files
with their provenance sidecars) and prints a summary.  Run
``rsscale <command> --help`` for the options.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
from pathlib import Path

import torch

from rsscale import experiments, methods, paper
from rsscale.bounds import check_alpha
from rsscale.data import load_dataset
from rsscale.devices import pick_device
from rsscale.experiments import aces, cost, family_cost, incremental, mutation, soundness, tables, views, violations
from rsscale.io import write_text_atomic
from rsscale.profiling import profile_checkpoint, profile_model_sizes
from rsscale.provenance import build_manifest, verify_manifest
from rsscale.run import certify_checkpoints
from rsscale.shards import Shard, gather_shards
from rsscale.training.denoiser import DENOISER_OBJECTIVES
from rsscale.training.recipes import RECIPES
from rsscale.training.runs import COLLAPSE, fit_sween_weights, train_classifier, train_denoiser_for


def _json_list(text: str) -> list:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON list, got {text!r} ({err})") from err
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list, got {text!r}")
    return value


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"expected a JSON object, got {text!r} ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value


def _check_counts(args) -> None:
    """Refuse a count option (threads, inputs, epochs, batch sizes, ...) below 1 or a negative seed, naming it."""
    for name in ("threads", "skip", "pack", "max_inputs", "epochs", "batch_size", "batches", "repeats"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if getattr(args, "seed", 0) < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    for value in getattr(args, "batch_sizes", None) or ():
        if value < 1:
            raise ValueError(f"--batch-sizes must all be >= 1, got {value}")


def _setup(args) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if hasattr(args, "device"):
        args.device = str(pick_device(args.device))


def _out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure: PyTorch's (CUDA or CPU allocator) or Python's."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _smaller_batch(args) -> str:
    """The option that sets the command's batch size, at half its current value, as the user would type it."""
    if getattr(args, "batch_size", None):
        return f"at batch size {args.batch_size}: try --batch-size {max(1, args.batch_size // 2)}"
    if getattr(args, "batch_sizes", None):
        return (f"at batch sizes {' '.join(map(str, args.batch_sizes))}: try --batch-sizes "
                + " ".join(str(max(1, b // 2)) for b in args.batch_sizes))
    if args.command in ("certify", "aces"):  # the batch size is a method parameter
        params = _json(args.params)
        size = params.get("batch_size") or inspect.signature(
            methods.family(getattr(args, "method", args.command))).parameters["batch_size"].default
        return f"at batch size {size}: try --params {shlex.quote(json.dumps({**params, 'batch_size': size // 2 or 1}))}"
    return "try a smaller batch size"


def _recorded(args) -> dict:
    """The command's arguments, as its provenance sidecar records them."""
    return {k: v for k, v in vars(args).items() if k != "func"}


def _writer(args) -> dict:
    """How a result-writing command treats an existing result file (:class:`rsscale.io.RowWriter`)."""
    return {"partial": args.partial, "restart": args.restart, "discard_stale": args.discard_stale}


def cmd_methods(args) -> None:
    for name in methods.available():
        meta = methods.info(name)
        flag = "sound" if meta.sound else f"NOT SOUND: {meta.unsound_reason}"
        print(f"{name:16s} {flag:10s} {meta.summary}")


def cmd_data(args) -> None:
    dataset = load_dataset(args.dataset, **_json(args.params))
    dataset.save(args.out)
    print(f"{dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test, input {dataset.input_shape}")


def _training(args) -> dict:
    """The options every training command shares."""
    return {"sigma": args.sigma, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "seed": args.seed, "device": args.device, "progress": not args.quiet, "parameters": _recorded(args)}


def cmd_train(args) -> None:
    report, meta = train_classifier(args.data, args.out, arch=args.arch, arch_params=_json(args.arch_params),
                                    objective=args.objective, objective_params=_json(args.objective_params),
                                    recipe=args.recipe, val_fraction=args.val_fraction, collapse=args.collapse,
                                    **_training(args))
    print(f"trained {args.arch} at sigma={args.sigma}: {report.seconds:.1f} s, "
          f"test accuracy {meta['test_accuracy_clean']:.3f} clean / {meta['test_accuracy_noisy']:.3f} under noise")
    if meta["collapsed"]:
        print(f"warning: {args.out} is marked {meta['collapsed']}", file=sys.stderr)


def cmd_train_denoiser(args) -> None:
    report, meta = train_denoiser_for(args.data, args.classifier, args.out, objective=args.objective,
                                      mse_epochs=args.mse_epochs, depth=args.depth, width=args.width,
                                      trust_checkpoint=args.trust_checkpoint, **_training(args))
    print(f"trained a denoiser ({args.objective}) at sigma={args.sigma} for {args.classifier}: {report.seconds:.1f} s,"
          f" test accuracy of f(D(x)) {meta['test_accuracy_clean']:.3f} clean / {meta['test_accuracy_noisy']:.3f}"
          f" under noise")


def cmd_fit_sween(args) -> None:
    """SWEEN's ensemble weights fitted on noisy copies of held-out training examples (members frozen)."""
    fit = fit_sween_weights(args.data, args.checkpoint, args.out, sigma=args.sigma, max_examples=args.max_examples,
                            copies=args.copies, steps=args.steps, seed=args.seed, device=args.device,
                            parameters=_recorded(args), trust_checkpoint=args.trust_checkpoint)
    print(f"sween weights at sigma={fit['sigma']} from {fit['examples']} held-out training examples x {args.copies} "
          f"noisy copies: mixture {', '.join(f'{a:.3f}' for a in fit['mixture'])}")


def cmd_certify(args) -> None:
    run = certify_checkpoints(args.data, args.checkpoint, args.out, method=args.method, sigma=args.sigma,
                              params=_json(args.params), params_file=args.params_file, seed=args.seed, skip=args.skip,
                              max_inputs=args.max_inputs, pack=args.pack, device=args.device, progress=not args.quiet,
                              trust_checkpoint=args.trust_checkpoint,
                              writer=_writer(args), shard=Shard.parse(args.shard) if args.shard else None)
    where = f" (shard {args.shard})" if args.shard else ""
    if run is None:
        print(f"{args.method}{where}: no inputs in this shard (the run has fewer packs than shards)")
        return
    print(f"{args.method} sigma={run.parameters['sigma']}{where}: {len(run)} inputs, certified accuracy at r=0 "
          f"{run.certified_accuracy(0):.3f}, ACR {run.acr():.3f}")


def cmd_gather(args) -> None:
    record = gather_shards(args.shards, args.out)
    print(f"gathered {len(record['shards'])} shards into {args.out}: {record['run']['rows']} inputs, "
          f"ACR {record['summary']['ACR']:.3f}")


def cmd_aces(args) -> None:
    """ACES theta sweep: F (the checkpoint) and the core model on test inputs, one sample set per input for all thetas
    (theta = 1, pure RS, always included); one CSV row per (input, theta)."""
    record, indices = aces.run_sweep(
        args.data, args.checkpoint, args.core, args.thetas, args.out, sigma=args.sigma, params=_json(args.params),
        seed=args.seed, skip=args.skip, max_inputs=args.max_inputs, pack=args.pack, device=args.device,
        progress=not args.quiet, trust_checkpoint=args.trust_checkpoint,
        writer=_writer(args))
    parameters = record["parameters"]
    print(f"aces sigma={parameters['sigma']}: {len(indices)} inputs x {len(parameters['thetas'])} thetas from one "
          f"sample set each")


def _print_profile(rows: list[dict], label: bool = False) -> None:
    for row in rows:
        print((f"{row['model']:>12s} " if label else "")
              + ("shared noise " if row.get("shared_noise") else "")
              + f"batch {row['batch_size']:6d}: forward-only {row['forward_samples_per_s']:12.0f} samples/s,"
              f" certify {row['certify_samples_per_s']:12.0f} samples/s, ratio certify/forward = {row['ratio']:.3f}")


def cmd_profile(args) -> None:
    _print_profile(profile_checkpoint(args.data, args.checkpoint, args.out, sigma=args.sigma,
                                      batch_sizes=args.batch_sizes, batches=args.batches, repeats=args.repeats,
                                      engine=_json(args.engine), seed=args.seed, device=args.device,
                                      parameters=_recorded(args), trust_checkpoint=args.trust_checkpoint))


def cmd_profile_sizes(args) -> None:
    """The engine profile per model size: untrained models (throughput does not depend on the weights)."""
    variants = _json_list(args.variants)
    if not variants or not all(isinstance(v, dict) for v in variants):
        raise ValueError(f"--variants must be a non-empty JSON list of objects, got {args.variants!r}")
    _print_profile(profile_model_sizes(args.data, _json(args.models), args.out, sigma=args.sigma,
                                       batch_sizes=args.batch_sizes, batches=args.batches, repeats=args.repeats,
                                       engine=_json(args.engine), variants=variants, pack=args.pack, seed=args.seed,
                                       device=args.device, parameters=_recorded(args)), label=True)


def cmd_family_cost(args) -> None:
    """Cost per model evaluation of every family next to Cohen's (rsscale.experiments.family_cost)."""
    rows = family_cost.family_cost_table(args.data, _json(args.runs), args.out, inputs=args.inputs,
                                         rounds=args.rounds, seed=args.seed, device=args.device,
                                         parameters=_recorded(args), trust_checkpoint=args.trust_checkpoint)
    for row in rows:
        print(f"{row['run']:>14s}: {row['evaluations']:9.0f} evaluations/input, {row['us_per_evaluation']:7.2f} us "
              f"each (x{row['per_evaluation_ratio']:.2f} Cohen's), own computation {row['method_seconds']:.4f} s/input")


def cmd_incremental(args) -> None:
    rows, original = incremental.run_incremental(
        args.data, args.checkpoint, args.out, sigma=args.sigma, modifications=args.modifications, n0=args.n0, n=args.n,
        n_incremental=args.n_incremental, alpha=args.alpha, alpha_zeta=args.alpha_zeta, gamma=args.gamma,
        radii=args.radii, max_inputs=args.max_inputs, batch_size=args.batch_size, pack=args.pack, seed=args.seed,
        parameters=_recorded(args), trust_checkpoint=args.trust_checkpoint,
        writer=_writer(args))
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
    try:
        experiments.get(args.kind).table(args.inputs, args.out, options)
    except (KeyError, IndexError, TypeError, UnicodeDecodeError) as err:  # files of another kind, or not text
        raise ValueError(f"the inputs are not result files of the {args.kind!r} table ({type(err).__name__}: "
                         f"{err})") from err


def cmd_figure(args) -> None:
    """Draw an experiment's figure through the registry (``rsscale.experiments``)."""
    experiments.get(args.kind).figure(args.inputs, args.out, experiments.FigureOptions(args.title))


def cmd_harness(args) -> None:
    limits = {}
    for item in args.limit:
        key, _, value = item.partition("=")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--limit expects METHOD/CASE=TRIALS with TRIALS >= 1, got {item!r}")
        limits[key] = int(value)
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    check_alpha(args.alpha)
    rows = soundness.run(args.out, args.trials, args.methods, args.seed, args.alpha, limits, args.uncapped,
                         writer=_writer(args))
    failed = [f"{r['method']}/{r['case']} {r['position']}" for r in rows if r["verdict"] == "FAIL"]
    if failed:
        print(f"rsscale: harness: FAIL: violation rate significantly above alpha = {args.alpha:g} (or above the exact "
              f"probability) for a method claiming soundness, at: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


def cmd_mutants(args) -> None:
    check_alpha(args.alpha)
    rows = mutation.run(args.out, args.score_out, args.methods, args.seed, args.alpha)
    survivors = [f"{r['method']}/{r['mutant']}" for r in rows if r["caught_by"] == "none"]
    if survivors:
        print(f"rsscale: mutants: SURVIVED (neither killed by the harness nor flagged by the audit): "
              f"{', '.join(survivors)}", file=sys.stderr)
        if args.strict:
            raise SystemExit(1)


def cmd_violations(args) -> None:
    settings = _json(args.settings)
    specs = settings.pop("methods", None)
    if not isinstance(specs, dict) or not specs:
        raise ValueError("--settings needs a non-empty 'methods' mapping of label -> method parameters")
    violations.run(args.out, specs, args.seed, writer=_writer(args), **settings)


def cmd_claims(args) -> None:
    import yaml

    from rsscale.experiments import claims

    try:
        ledger = yaml.safe_load(Path(args.ledger).read_text())
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{args.ledger} is not a YAML claims ledger ({err})") from err
    if not isinstance(ledger, dict) or not isinstance(ledger.get("claims"), list):
        raise ValueError(f"{args.ledger}: expected a mapping with a list under 'claims'")
    rows = claims.evaluate(ledger["claims"], args.tables)
    tables.write_table(rows, list(rows[0]), args.out, caption="Survey claims and their measured verdicts",
                       shown=claims.SHOWN)
    for row in rows:
        print(f"{row['id']:>22s}: {row['verdict']:<14s} {row['result']}")


def cmd_manifest(args) -> None:
    record = build_manifest(args.root, args.paths, args.config, exclude=[args.out])
    write_text_atomic(args.out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"manifest: {len(record['files'])} artifacts and {len(record['configs'])} config files -> {args.out}")


def cmd_verify(args) -> None:
    checked, problems = verify_manifest(args.manifest, args.root)
    for line in problems:
        print(f"rsscale: verify: {line}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"verified {checked} files against {args.manifest}")


def cmd_view(args) -> None:
    """A view of a study table for the report (``rsscale.experiments.views``)."""
    views.write_view(args.view, args.table, args.out)


def cmd_numbers(args) -> None:
    """``\\newcommand`` macros of the study's settings, read from the run sidecars, for the paper's prose."""
    text = paper.write_macros(paper.study_macros(args.main, args.sample_count, args.dimension), args.out)
    print(text.split("\n", 1)[1], end="")


def cmd_plan(args) -> None:
    """The cost of a study before it runs: per rule and in total, jobs, passes and projected wall-clock."""
    config = cost.load_study_config(args.configfile)
    jobs = cost.study_jobs(config, args.baseline)
    threads = args.threads or torch.get_num_threads()
    rates, overhead, how = cost.calibrate(jobs, config, args.plan_device, threads, args.reference)
    cost.project(jobs, rates, overhead)
    limit = args.limit_hours * 3600 if args.limit_hours else None
    rows = cost.summary(jobs, threads, limit)
    caption = (f"Plan of {args.configfile} on {args.plan_device}: {how}"
               + (f"; shards: ceil(job seconds / {args.limit_hours} h) per certify job" if limit else ""))
    print(caption)
    columns = cost.PLAN_COLUMNS if limit else [c for c in cost.PLAN_COLUMNS if c != "shards"]
    width = {c: max(len(c), *(len(_plan_cell(r[c])) for r in rows)) for c in columns[:-1]}
    print("  ".join(c.ljust(width[c]) for c in columns[:-1]) + "  notes")
    for row in rows:
        print("  ".join(_plan_cell(row[c]).ljust(width[c]) for c in columns[:-1]) + "  " + row["notes"])
    if args.out:
        tables.write_table(rows, columns, args.out, caption=caption)


def _plan_cell(value) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _options(*arguments: tuple[str, dict]) -> argparse.ArgumentParser:
    """Arguments several commands share, built once and given to each as a parent parser."""
    group = argparse.ArgumentParser(add_help=False)
    for flag, spec in arguments:
        group.add_argument(flag, **spec)
    return group


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line like every other error (exit status 2)."""

    def error(self, message):
        self.exit(2, f"rsscale: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rsscale", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, func, help_text, *parents):
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
        p.set_defaults(func=func)
        return p

    data, out = _options(("--data", {"required": True})), _options(("--out", {"required": True}))
    prefix = _options(("--out", {"required": True, "help": "path prefix; .csv, .md and .tex are written"}))
    seeded = _options(("--threads", {"type": int, "default": None, "help": "PyTorch intra-op threads"}),
                      ("--seed", {"type": int, "default": 0}))
    runtime = _options(("--device", {"default": None, "help": "cpu, cuda, cuda:1, ... (default: CUDA when present; "
                                                      "cuda without an index on a multi-GPU node: a free one, "
                                                      "locked for this job)"}),
                       ("--quiet", {"action": "store_true", "help": "no progress bar"}))
    sigma = _options(("--sigma", {"type": float, "default": None,
                                  "help": "default: the (first) checkpoint's training sigma"}))
    training = _options(("--batch-size", {"type": int, "default": 64}), ("--lr", {"type": float, "default": 1e-3}))
    inputs = _options(("--skip", {"type": int, "default": 1, "help": "use every skip-th test input"}),
                      ("--max-inputs", {"type": int, "default": None}),
                      ("--pack", {"type": int, "default": 10, "help": "inputs whose samples share forward passes"}))
    trusted = _options(("--trust-checkpoint", {"action": "store_true",
                                                "help": "load checkpoints that have no .sha256 file beside them"}))
    throughput = _options(("--batch-sizes", {"type": int, "nargs": "+", "default": [100, 1000]}),
                          ("--engine", {"default": "{}", "help": "JSON object of sampling-engine options, e.g. "
                                        '\'{"autocast": "bf16", "channels_last": true, "compile": true}\''}))

    results = _options(
        ("--restart", {"action": "store_true",
                       "help": "discard the rows of an earlier run in the result file (its own result files only) "
                               "and start afresh; without it a rerun resumes a run of the same identity and refuses "
                               "one of another"}),
        ("--partial", {"default": None, "metavar": "PATH",
                       "help": "write the rows to PATH while the run goes (resumed from there) and copy them onto the "
                               "result file when complete: the workflow's rules give a file Snakemake never deletes"}),
        ("--discard-stale", {"action": "store_true",
                             "help": "discard (and say so on stderr) rows of a run of another identity instead of "
                                     "refusing them: the workflow's rules, rerun because inputs or parameters "
                                     "changed"}))

    command("methods", cmd_methods, "list the registered method families and whether they are sound")

    p = command("data", cmd_data, "build a dataset file", out)
    p.add_argument("--dataset", required=True)
    p.add_argument("--params", default="{}", help="JSON object of loader parameters")

    p = command("train", cmd_train, "train a base classifier", data, out, training, seeded, runtime)
    p.add_argument("--arch", default="cnn")
    p.add_argument("--arch-params", default="{}", help="JSON object of architecture parameters")
    p.add_argument("--objective", default="gaussian")
    p.add_argument("--objective-params", default="{}",
                   help='JSON object of objective parameters, e.g. \'{"k": 8}\' for macer (sigma: --sigma)')
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--recipe", choices=RECIPES, default="shared",
                   help="shared: Adam with cosine decay (--lr default 1e-3, --batch-size 64); published: the "
                        "objective's published optimizer, schedule, batch size and hyperparameters (--lr, "
                        "--batch-size and --objective-params, when given, replace the recipe's)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the training set held out (stratified, seeded) and evaluated every epoch")
    p.add_argument("--collapse", choices=COLLAPSE, default="finding",
                   help="a model whose held-out accuracy (clean or under the training noise) ends below twice "
                        "chance: fail (nothing saved; what the workflow passes unless its config marks collapse as a "
                        "finding) or finding (saved, marked collapsed in its sidecar, and said on stderr; the default "
                        "here)")
    p.set_defaults(lr=None, batch_size=None)

    p = command("train-denoiser", cmd_train_denoiser,
                "train a DnCNN denoiser in front of a frozen classifier; writes the composed f(D(x)) checkpoint",
                data, out, training, seeded, runtime, trusted)
    p.add_argument("--classifier", required=True, help="checkpoint of the classifier (kept frozen)")
    p.add_argument("--objective", choices=DENOISER_OBJECTIVES, default="mse")
    p.add_argument("--mse-epochs", type=int, default=None,
                   help="MSE epochs before the stability ones (mse_then_stability; default half the epochs)")
    p.add_argument("--sigma", type=float, required=True, help="noise level the denoiser removes")
    p.add_argument("--depth", type=int, default=4, help="DnCNN convolutions")
    p.add_argument("--width", type=int, default=16, help="DnCNN channels")
    p.add_argument("--epochs", type=int, default=20)

    p = command("certify", cmd_certify, "certify test inputs with a method family; one CSV row per input",
                data, out, sigma, inputs, seeded, runtime, trusted, results)
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help="one model, or several for the families that combine models (ensemble members)")
    p.add_argument("--method", default="cohen")
    p.add_argument("--params", default="{}", help="JSON object of method parameters (n0, n, alpha, ...)")
    p.add_argument("--params-file", default=None,
                   help='JSON file {"params": {...}} merged over --params (e.g. the weights fit-sween wrote)')
    p.add_argument("--shard", default=None, metavar="I/K",
                   help="certify only shard I (0-based) of K: whole packs, each with its run-wide seed; "
                        "`rsscale gather` merges the K shard files into the unsharded run's file")

    p = command("gather", cmd_gather,
                "merge the K shard files of one certification run (certify --shard) into its result file")
    p.add_argument("--shards", nargs="+", required=True, help="the K shard CSVs (sidecars beside them), any order")
    p.add_argument("--out", required=True, help="the result CSV; its .json sidecar is written beside it")

    p = command("fit-sween", cmd_fit_sween,
                "fit SWEEN's ensemble weights on noisy held-out training examples; certify reads them with "
                "--params-file",
                data, sigma, seeded, runtime, trusted)
    p.add_argument("--checkpoint", required=True, nargs="+", help="the ensemble members")
    p.add_argument("--max-examples", type=int, default=500, help="held-out training examples the weights are fitted on")
    p.add_argument("--copies", type=int, default=8, help="Gaussian copies of each example")
    p.add_argument("--steps", type=int, default=300, help="full-batch Adam steps on the weight logits")
    p.add_argument("--out", required=True,
                   help='JSON provenance record holding {"params": {"weights": [...]}, "fit": {...}}')

    p = command("aces", cmd_aces, "ACES theta sweep (F = the checkpoint, a core model): a CSV row per input and theta",
                data, out, sigma, inputs, seeded, runtime, trusted, results)
    p.add_argument("--checkpoint", required=True, help="the certification model F (noise-trained)")
    p.add_argument("--core", required=True, help="the core model (accurate, not robust)")
    p.add_argument("--thetas", type=float, nargs="+", required=True, help="entropy thresholds in [0, 1]")
    p.add_argument("--params", default="{}", help="JSON object of aces parameters (n0, n, alpha, batch_size)")

    p = command("profile", cmd_profile, "certification vs forward-only throughput of a model",
                data, out, sigma, throughput, seeded, runtime, trusted)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=7)

    p = command("profile-sizes", cmd_profile_sizes,
                "certification vs forward-only throughput of untrained models of several sizes (their input shape "
                "and classes: the --data file's)", data, out, throughput, seeded, runtime)
    p.add_argument("--models", required=True,
                   help='JSON object label -> {"arch": ..., "params": {...}}, e.g. \'{"cnn-w8": {"arch": "cnn",'
                        ' "params": {"width": 8}}}\'')
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--variants", default="[{}]",
                   help='JSON list of engine-option overrides, each profiled in the same run, e.g. '
                        '\'[{}, {"shared_noise": true}]\'')
    p.add_argument("--pack", type=int, default=1, help="inputs whose samples one counting call draws")

    p = command("family-cost", cmd_family_cost,
                "cost per model evaluation of every family next to Cohen's on the same model and inputs, with each "
                "family's own computation apart", data, prefix, seeded, runtime, trusted)
    p.add_argument("--runs", required=True,
                   help='JSON object label -> {"method", "checkpoint": [paths], "sigma", "params", "params_file"}; '
                        'one label must be "baseline" (Cohen)')
    p.add_argument("--inputs", type=int, default=10, help="the first test inputs, certified by every run")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds over all runs, after one warm-up round")

    p = command("incremental", cmd_incremental,
                "incremental RS: certify a model, then each modification from scratch and with IRS (CPU; one row each)",
                data, sigma, seeded, trusted, results)
    p.add_argument("--checkpoint", required=True, help="the original model")
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

    p = command("view", cmd_view, "a view of a study table for the report: the rows and columns of one argument")
    p.add_argument("view", choices=list(views.VIEWS), help="which view (rsscale.experiments.views.VIEWS)")
    p.add_argument("--table", required=True, help="the study table's CSV")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("figure", cmd_figure, "figures from result files (PDF and PNG)")
    p.add_argument("kind", choices=experiments.base.with_figure(), help="the experiment whose figure to draw")
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="path prefix; .pdf and .png are written")
    p = command("harness", cmd_harness, "soundness harness: violation rates of every method on exact oracles",
                prefix, seeded, results)
    p.add_argument("--trials", type=int, required=True,
                   help="trials per position of each case (capped per slow case, see --uncapped)")
    p.add_argument("--methods", nargs="+", default=None, help="registered methods to check (default: all)")
    p.add_argument("--alpha", type=float, default=0.05, help="certification level, and the rate each case is held to")
    p.add_argument("--limit", action="append", default=[], metavar="METHOD/CASE=TRIALS",
                   help="trials of one case, overriding --trials and its cap (repeatable)")
    p.add_argument("--uncapped", action="store_true", help="ignore the per-case trial caps of the slow cases")

    p = command("mutants", cmd_mutants, "mutation suite: every declared mutant on the harness case that must catch it",
                prefix, seeded)
    p.add_argument("--score-out", required=True, help="path prefix of the score table per family (.csv, .md, .tex)")
    p.add_argument("--methods", nargs="+", default=None, help="registered methods whose mutants to run (default: all)")
    p.add_argument("--alpha", type=float, default=0.05, help="certification level, and the rate each case is held to")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a mutant survives")

    p = command("violations", cmd_violations,
                "search certified balls of input-dependent-sigma methods for points where g disagrees (ball oracle)",
                prefix, seeded, results)
    p.add_argument("--settings", required=True,
                   help='JSON: {"methods": {label: params}, "dim", "ball_radius", "sigma", "inputs", "far", ...}')

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
    p = command("plan", cmd_plan, "the cost of a study before it runs: jobs, forward and training passes and "
                "projected wall-clock per rule, shards per wall-clock limit")
    p.add_argument("--configfile", required=True, help="a study config (workflow/config/<study>.yaml)")
    p.add_argument("--device", dest="plan_device", default="cpu", help=f"one of {', '.join(cost.DEVICES)}")
    p.add_argument("--threads", type=int, default=None, help="cores of the run (default: PyTorch's threads)")
    p.add_argument("--limit-hours", type=float, default=None, help="wall-clock limit per certification job")
    p.add_argument("--reference", default=None, help="a committed throughput table instead of a probe "
                   "(figures/gpu_h200/sizes_*.csv; the default for --device h200)")
    p.add_argument("--baseline", default="workflow/baseline/default",
                   help="the reference tables that price the oracle rules (soundness, mutation, violations)")
    p.add_argument("--out", default=None, help="path prefix of the table (.csv, .md, .tex)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            _check_counts(args)
            _setup(args)
            args.func(args)
        except (RuntimeError, MemoryError) as err:
            if not _out_of_memory(err):
                raise
            first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
            raise ValueError(f"out of memory {_smaller_batch(args)} ({first})") from err
    except (ValueError, TypeError, OSError) as err:  # bad input: one line, no traceback, exit status 2
        message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
        print(f"rsscale: error: {message or type(err).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
