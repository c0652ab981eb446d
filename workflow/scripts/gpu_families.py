#!/usr/bin/env python3
"""Every registered method family certifies on a CUDA device: the soundness harness's cases, run on the GPU.

    python workflow/scripts/gpu_families.py --device cuda --trials 1000 --out results/gpu/families_cuda.csv

Each case of :mod:`rsscale.harness` builds its certifier through a factory that adds ``device=...``, so the
base classifier (an exact oracle, or a small network in front of one) and every noisy forward pass run on the
device; inputs are drawn as in the CPU harness.  One row per (method, case, position) with the harness's columns
plus ``device`` and ``error`` (a family that fails on the device says why instead of stopping the run).  The
verdicts read as in the CPU harness: a family that claims soundness and violates its certificates
significantly more often than alpha at any position is a FAIL.  Prints one line per row and a closing count.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import sys
import time
import traceback

import torch

from rsscale import harness, methods


def device_factory(device: str):
    """``methods.build`` with every certifier placed on ``device`` (replacing the harness's CPU default).

    The certifier gets copies of the oracle's modules: it moves its models to the device, while the harness keeps
    computing the closed-form truth from the originals on the CPU.
    """

    def on_copies(value):
        if isinstance(value, torch.nn.Module):
            return copy.deepcopy(value)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.nn.Module) for v in value):
            return [copy.deepcopy(v) for v in value]
        return value

    def build(name, **params):
        return methods.build(name, **{**{key: on_copies(value) for key, value in params.items()}, "device": device})

    return build


def run(device: str, trials: int, alpha: float, seed: int, names: list[str] | None = None) -> list[dict]:
    """The harness rows of every case of the ``names`` families (default: all) on ``device``."""
    rows = []
    factory = device_factory(device)
    for entry in harness.cases(names):
        tic = time.perf_counter()
        try:
            outcomes = harness.run_case(entry, entry.trials_for(trials), seed, alpha, factory)
            found = harness.summarize(entry, outcomes, alpha, seconds=time.perf_counter() - tic)
            for row in found:
                row.update(device=device, error="")
        except Exception as err:  # noqa: BLE001 -- a family that fails on the device is reported, not fatal
            traceback.print_exc()
            found = [{**harness.no_case_row(entry.method, alpha), "case": entry.name, "verdict": "ERROR",
                      "seconds": time.perf_counter() - tic, "device": device, "error": f"{type(err).__name__}: {err}"}]
        for row in found:
            line = harness.format_row(row) if row["verdict"] != "ERROR" else f"{entry.key}: ERROR {row['error']}"
            print(line, flush=True)
        rows += found
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--trials", type=int, default=1000, help="trials per position (slow cases keep their cap)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device is visible to PyTorch")
    print(f"torch {torch.__version__}, device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""), flush=True)
    rows = run(args.device, args.trials, args.alpha, args.seed)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*harness.COLUMNS, "device", "error"])
        writer.writeheader()
        writer.writerows(rows)
    families = sorted({r["method"] for r in rows if r["verdict"] != "ERROR"})
    failed = [f"{r['method']}/{r['case']}" for r in rows if r["verdict"] in ("FAIL", "ERROR")]
    missing = sorted(set(methods.available()) - {r["method"] for r in rows})
    print(f"{len(families)} of {len(methods.available())} families certified on {args.device}; "
          f"FAIL/ERROR: {failed or 'none'}; without a harness case: {missing or 'none'}; "
          f"{sum(r['trials'] for r in rows if not math.isnan(r['rate']))} certifications")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
