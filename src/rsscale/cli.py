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

from rsscale import methods
from rsscale.analysis import dimension, figures, tables
from rsscale.analysis.results import read_run
from rsscale.certificate import CertificateWriter
from rsscale.data import Dataset, load_dataset
from rsscale.methods.projected import fit_projection
from rsscale.models import build_model, load_checkpoint, save_checkpoint
from rsscale.noise import Gaussian
from rsscale.profiling import profile_throughput
from rsscale.provenance import device_name, utc_now, write_sidecar
from rsscale.sampling import resolve_device
from rsscale.training import build_objective, evaluate_accuracy, fit


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


def cmd_methods(args) -> None:
    for name in methods.available():
        meta = methods.info(name)
        flag = "sound" if meta.sound else f"NOT SOUND: {meta.unsound_reason}"
        print(f"{name:16s} {flag:10s} {meta.summary}")


def cmd_data(args) -> None:
    dataset = load_dataset(args.dataset, **_json(args.params))
    dataset.save(args.out)
    print(f"{dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_test)} test, input {dataset.input_shape}")


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
    shape = dataset.input_shape
    if base_arch == "cnn":
        base_params.setdefault("image_size", shape[-1])
        base_params.setdefault("in_channels", shape[0])
    else:
        base_params.setdefault("dim", dataset.dim)
        base_params.setdefault("input_shape", list(shape))
    base_params.setdefault("num_classes", dataset.num_classes)
    base_params.setdefault("mean", float(dataset.x_train.mean()))
    base_params.setdefault("std", float(dataset.x_train.std()))
    torch.manual_seed(args.seed)  # parameter initialisation
    model = build_model(args.arch, **arch_params)
    if projected:
        model.set_projection(*fit_projection(dataset.x_train, arch_params["rank"]))
    objective = build_objective(args.objective, sigma=args.sigma)
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


def cmd_certify(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    model, meta = load_checkpoint(args.checkpoint)
    sigma = args.sigma if args.sigma is not None else meta["sigma"]
    params = _json(args.params)
    certifier = methods.build(args.method, model=model, num_classes=dataset.num_classes, sigma=sigma,
                              device=args.device, **params)
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
                  "checkpoint": args.checkpoint, **certifier.settings(), "method_params": params}
    run = read_run(out)
    info = methods.info(args.method)
    write_sidecar(out.with_suffix(".json"), parameters, started, args.device,
                  checkpoint_sha256=meta["sha256"], dataset=dataset.name, dataset_meta=dataset.meta,
                  dim=dataset.dim, input_shape=list(dataset.input_shape),
                  sound=info.sound, unsound_reason=info.unsound_reason,
                  summary={"inputs": len(run), "ACR": run.acr(), "clean_accuracy": float(run.correct.mean()),
                           "seconds_median": float(np.median(run.columns["seconds"]))})
    print(f"{args.method} sigma={sigma}: {len(run)} inputs, certified accuracy at r=0 {run.certified_accuracy(0):.3f},"
          f" ACR {run.acr():.3f}")


def cmd_profile(args) -> None:
    started = utc_now()
    dataset = Dataset.load(args.data)
    model, meta = load_checkpoint(args.checkpoint)
    sigma = args.sigma if args.sigma is not None else meta["sigma"]
    device = args.device
    rows = []
    for batch_size in args.batch_sizes:
        profile = profile_throughput(model, dataset.input_shape, Gaussian(sigma), dataset.num_classes, batch_size,
                                     device, batches=args.batches, repeats=args.repeats, seed=args.seed)
        row = {"model": Path(args.checkpoint).stem, "device": device_name(device), "threads": torch.get_num_threads(),
               **profile.as_dict()}
        rows.append(row)
        print(f"batch {batch_size:6d}: forward-only {profile.forward_samples_per_s:12.0f} samples/s, "
              f"certify {profile.certify_samples_per_s:12.0f} samples/s, ratio certify/forward = {profile.ratio:.3f}")
    columns = list(rows[0])
    tables.write_table(rows, columns, str(args.out).removesuffix(".csv"))
    write_sidecar(Path(args.out).with_suffix(".json"), {k: v for k, v in vars(args).items() if k != "func"},
                  started, device, checkpoint_sha256=meta["sha256"])


def cmd_table(args) -> None:
    if args.kind == "profile":
        rows = []
        for path in args.inputs:
            rows += list(_read_csv_rows(path))
        columns = ["model", "batch_size", "forward_samples_per_s", "certify_samples_per_s", "ratio", "device"]
        tables.write_table(rows, columns, args.out, caption="Certification vs forward-only throughput")
        return
    runs = [read_run(p) for p in args.inputs]
    if args.kind == "certified-accuracy":
        rows = tables.certified_accuracy_rows(runs, args.radii)
    elif args.kind == "dimension":
        rows = dimension.dimension_rows(runs, args.radii, args.linf_radii)
        slopes = dimension.slope_rows(rows)
        tables.write_table(slopes, list(slopes[0]), f"{args.out}_slopes")
        for row in slopes:
            print(f"{row['group']:>10s} {row['noise']:>8s} {row['norm']:>4s}: slope {row['slope']:+.3f}"
                  f" +- {row['slope_se']:.3f} (theory if the native radius were constant: "
                  f"{row['theory_if_native_constant']:+.1f})")
    else:
        rows = sample_count_rows(runs, args.radii)
    tables.write_table(rows, list(rows[0]), args.out)
    print(Path(f"{args.out}.md").read_text())


def _read_csv_rows(path):
    import csv

    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            yield {k: (float(v) if k not in ("model", "device") else v) for k, v in row.items()}


def sample_count_rows(runs, radii) -> list[dict]:
    """One row per estimation sample count n: cost and radius of Cohen's CERTIFY."""
    from scipy.stats import norm

    rows = []
    for run in sorted(runs, key=lambda r: r.parameters["n"]):
        p = run.parameters
        certified = run.radius()[run.correct & (run.radius() > 0)]
        row = {"n": int(p["n"]), "inputs": len(run), "forward_passes": int(run.columns["forward_passes"][0]),
               "seconds_median": float(np.median(run.columns["seconds"])), "ACR": run.acr(),
               "radius_median_certified": float(np.median(certified)) if len(certified) else 0.0,
               "radius_ceiling": float(p["sigma"] * norm.ppf(p["alpha"] ** (1.0 / p["n"])))}
        row.update({f"cert_acc@{r:g}": run.certified_accuracy(r) for r in radii})
        rows.append(row)
    return rows


def cmd_figure(args) -> None:
    runs = [read_run(p) for p in args.inputs]
    if args.kind == "certified-accuracy":
        figures.certified_accuracy_curves(runs, args.out, title=args.title)
    elif args.kind == "dimension":
        figures.dimension_figure(dimension.dimension_rows(runs, [], []), args.out)
    else:
        rows = sample_count_rows(runs, [])
        figures.sample_count_figure(rows, args.out, sigma=runs[0].parameters["sigma"],
                                    alpha=runs[0].parameters["alpha"])


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
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("certify", cmd_certify, "certify test inputs with a method family; one CSV row per input")
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--method", default="cohen")
    p.add_argument("--sigma", type=float, default=None, help="default: the checkpoint's training sigma")
    p.add_argument("--params", default="{}", help="JSON object of method parameters (n0, n, alpha, ...)")
    p.add_argument("--skip", type=int, default=1, help="certify every skip-th test input")
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
    p.add_argument("--out", required=True)
    runtime(p)

    p = command("table", cmd_table, "tables from result files (CSV, Markdown, LaTeX)")
    p.add_argument("kind", choices=["certified-accuracy", "sample-count", "profile", "dimension"])
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--radii", type=float, nargs="*", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="l2 radii of the certified-accuracy columns")
    p.add_argument("--linf-radii", type=float, nargs="*", default=[0.001, 0.01],
                   help="l_inf radii of the certified-accuracy columns (dimension table)")
    p.add_argument("--out", required=True, help="path prefix; .csv, .md and .tex are written")

    p = command("figure", cmd_figure, "figures from result files (PDF and PNG)")
    p.add_argument("kind", choices=["certified-accuracy", "sample-count", "dimension"])
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True, help="path prefix; .pdf and .png are written")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _setup(args)
    for name in ("skip", "pack", "max_inputs", "epochs", "batch_size", "batches", "repeats"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SystemExit(f"rsscale: error: --{name.replace('_', '-')} must be >= 1, got {value}")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"rsscale: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
