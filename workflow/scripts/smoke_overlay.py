"""A config overlay that runs a big config end to end in minutes: the same protocol per input, fewer of everything.

Snakemake merges config files given in order, so ``--configfile BIG OVERLAY`` runs BIG's every rule, model and
certification protocol (n0, n, alpha, engine, radii) on a few inputs: counts of inputs drop to ``--inputs``,
training to one epoch, profiling to two batches and repeats, sample-count sweeps stop at 10^5 samples (two
points at least); each dataset's ``root`` points at ``--data`` (the stand-in files of ``stand_in_data.py``).
``--max-n N`` also caps every sample count at N (n0 and the pilot counts at N / 10, profiling batches at N), and
``--cpu`` is ``--max-n 1000``, and ``--sigmas K`` keeps the first K noise levels of every sigma list: to check on
a CPU that the config runs at all (``tests/test_big_configs.py``).

    python workflow/scripts/smoke_overlay.py workflow/config/cifar10.yaml --data /tmp/stand_in > overlay.yaml
    snakemake --cores all --configfile workflow/config/cifar10.yaml overlay.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

#: Keys whose value is reduced, wherever they appear in a section.
COUNTS = {"max_inputs": "inputs", "epochs": "epochs", "batches": "batches", "repeats": "batches"}
#: Sections that train models: a model of a smoke run may not leave chance in one epoch on a few stand-in images,
#: so a collapse is marked (``collapse: finding``) instead of failing the run.
TRAINING_SECTIONS = ("training", "training_methods")
#: Sample counts capped by ``--max-n``: the estimation count n at the cap, the selection and pilot counts at a tenth.
SAMPLE_COUNTS = ("n", "n0", "n_search", "n_pilot")


def shrink(section: dict, limits: dict[str, int], max_n: int | None) -> dict:
    """The overlay of one config section (nested dicts included): only the keys that change."""
    overlay = {}
    for key, value in section.items():
        if isinstance(value, dict) and key not in ("params", "engine", "reference"):
            inner = shrink(value, limits, max_n)
            if inner:
                overlay[key] = inner
        elif key in COUNTS:
            overlay[key] = limits[COUNTS[key]]
        elif key == "ns":
            cap = max_n or 100000
            kept = [n for n in value if n <= cap]
            overlay[key] = kept if len(kept) >= 2 else [max(1, cap // 10), cap]  # a sweep has two points at least
        elif max_n and key in SAMPLE_COUNTS and isinstance(value, int):
            overlay[key] = min(value, max_n if key == "n" else max(1, max_n // 10))
        elif key == "sigmas" and limits.get("sigmas"):
            overlay[key] = value[: limits["sigmas"]]
        elif max_n and key == "batch_sizes":
            overlay[key] = [min(value[0], max_n)]
    return overlay


def training_overlay(key: str, section: dict, overlay: dict) -> dict:
    """``overlay`` of a section, with ``collapse: finding`` in every training section within it."""
    if key in TRAINING_SECTIONS:
        overlay = {**overlay, "collapse": "finding"}
    for inner, value in section.items():
        if isinstance(value, dict) and inner not in ("params", "engine", "reference"):
            nested = training_overlay(inner, value, overlay.get(inner, {}))
            if nested:
                overlay[inner] = nested
    return overlay


def overlay_for(config: dict, data: Path, inputs: int, max_n: int | None = None, sigmas: int | None = None) -> dict:
    limits = {"inputs": inputs, "epochs": 1, "batches": 2, "sigmas": sigmas}
    overlay = {key: training_overlay(key, value, shrink(value, limits, max_n)) for key, value in config.items()
               if isinstance(value, dict) and key != "datasets"}
    overlay = {key: value for key, value in overlay.items() if value}
    overlay["datasets"] = {name: {"params": {"root": str(data / Path(spec["params"]["root"]).name)}}
                           for name, spec in config.get("datasets", {}).items() if "root" in spec.get("params", {})}
    return overlay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="folder of the stand-in data (stand_in_data.py)")
    parser.add_argument("--inputs", type=int, default=3, help="test inputs per certification run")
    parser.add_argument("--max-n", type=int, help="also cap sample counts at this (n0 and pilots at a tenth)")
    parser.add_argument("--cpu", action="store_true", help="--max-n 1000")
    parser.add_argument("--sigmas", type=int, help="keep the first this many noise levels of every sigma list")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    print(f"# smoke overlay for {args.config} (workflow/scripts/smoke_overlay.py)")
    max_n = args.max_n or (1000 if args.cpu else None)
    overlay = overlay_for(config, args.data.resolve(), args.inputs, max_n, args.sigmas)
    print(yaml.safe_dump(overlay, sort_keys=False), end="")


if __name__ == "__main__":
    main()
