"""A config overlay that runs a big config end to end in minutes: the same protocol per input, fewer of everything.

Snakemake merges config files given in order, so ``--configfile BIG OVERLAY`` runs BIG's every rule, model and
certification protocol (n0, n, alpha, engine, radii) on a few inputs: counts of inputs drop to ``--inputs``,
training to one epoch, profiling to two batches and repeats, sample-count sweeps stop at 10^5 samples (two
points at least); each dataset's ``root`` points at ``--data`` (the stand-in files of ``stand_in_data.py``).
``--cpu`` also caps every sample count at 1,000, to check on a laptop that the config runs at all.

    python workflow/scripts/smoke_overlay.py workflow/config/cifar10.yaml --data /tmp/stand_in > overlay.yaml
    snakemake --cores all --configfile workflow/config/cifar10.yaml overlay.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

#: Keys whose value is reduced, wherever they appear in a section.
COUNTS = {"max_inputs": "inputs", "epochs": "epochs", "batches": "batches", "repeats": "batches"}


def shrink(section: dict, limits: dict[str, int], cpu: bool) -> dict:
    """The overlay of one config section (nested dicts included): only the keys that change."""
    overlay = {}
    for key, value in section.items():
        if isinstance(value, dict) and key not in ("params", "engine", "reference"):
            inner = shrink(value, limits, cpu)
            if inner:
                overlay[key] = inner
        elif key in COUNTS:
            overlay[key] = limits[COUNTS[key]]
        elif key == "ns":
            kept = [n for n in value if n <= (1000 if cpu else 100000)]
            overlay[key] = kept if len(kept) >= 2 else sorted(value)[:2]  # a sweep has two points at least
        elif cpu and key in ("n", "n0") and isinstance(value, int):
            overlay[key] = min(value, 1000 if key == "n" else 100)
        elif cpu and key == "batch_sizes":
            overlay[key] = value[:1]
    return overlay


def overlay_for(config: dict, data: Path, inputs: int, cpu: bool) -> dict:
    limits = {"inputs": inputs, "epochs": 1, "batches": 2}
    overlay = {key: shrink(value, limits, cpu) for key, value in config.items()
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
    parser.add_argument("--cpu", action="store_true", help="also cap sample counts at 1,000")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    print(f"# smoke overlay for {args.config} (workflow/scripts/smoke_overlay.py)")
    print(yaml.safe_dump(overlay_for(config, args.data.resolve(), args.inputs, args.cpu), sort_keys=False), end="")


if __name__ == "__main__":
    main()
