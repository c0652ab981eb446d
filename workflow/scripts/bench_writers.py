#!/usr/bin/env python3
"""Certification throughput of the result writer at a commit against the working tree (not a test).

    python workflow/scripts/bench_writers.py [--commit 67cdc65] [--repeats 7]

Loads ``rsscale.io`` and ``rsscale.run`` as they were at ``--commit`` (from ``git show``) beside the current ones,
then alternates ``certify_dataset`` runs of both on an untrained digits CNN (Cohen, fresh output each run) in this
one process, and prints the median samples/s of each and their ratio (new / old).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rsscale import methods, run
from rsscale.data import load_dataset
from rsscale.models import build_model

REPO = Path(__file__).resolve().parents[2]


def old_modules(commit: str, folder: Path):
    """``rsscale.io`` and ``rsscale.run`` of ``commit``, the latter importing the former."""
    def source(name: str) -> str:
        return subprocess.run(["git", "show", f"{commit}:src/rsscale/{name}.py"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout

    loaded = {}
    for name in ("io", "run"):
        path = folder / f"old_{name}.py"
        path.write_text(source(name).replace("from rsscale.io import", "from old_io import"))
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        loaded[name] = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = loaded[name]
        spec.loader.exec_module(loaded[name])
    return loaded["run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="67cdc65")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inputs", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    dataset = load_dataset("digits", resolution=8)
    model = build_model("cnn", image_size=8, in_channels=1, num_classes=dataset.num_classes, width=4, hidden=8)
    certifier = methods.build("cohen", model=model, num_classes=dataset.num_classes, sigma=0.25, n0=100, n=10_000,
                              batch_size=1000, device="cpu")
    samples = args.inputs * (100 + 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        versions = {"old": old_modules(args.commit, folder), "new": run}
        rates = {name: [] for name in versions}
        for repeat in range(args.repeats):
            for name, module in versions.items():
                out = folder / f"{name}{repeat}.csv"
                start = time.perf_counter()
                module.certify_dataset(certifier, dataset, out, seed=0, max_inputs=args.inputs, progress=False)
                rates[name].append(samples / (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"{name}: {value:12.0f} samples/s (median of {args.repeats})")
    print(f"ratio new/old: {medians['new'] / medians['old']:.4f}")


if __name__ == "__main__":
    main()
