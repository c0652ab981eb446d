#!/usr/bin/env python3
"""Set ``rsscale plan``'s projection of every job beside the wall-clock the job took in a finished run.

    python workflow/scripts/plan_vs_run.py --configfile workflow/config/default.yaml \\
        --log .snakemake/log/<run>.snakemake.log [--threads 2] [--worst 10]

The log is the run's Snakemake log: a job's seconds are from the timestamp before its ``rule`` block to the one
before its ``Finished jobid`` line (one-second resolution; jobs that ran beside others include that contention).
The projection is made here and now (:func:`rsscale.experiments.cost.calibrate`, a probe of every model), so run
this on the idle machine the study ran on.  Prints, per rule, the jobs matched by output path, the summed
projected and measured seconds and their ratio, the median ratio per job, and the jobs whose ratio is farthest
from the rule's median (``--worst``).
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import statistics
import sys
from pathlib import Path

STAMP = re.compile(r"\[(\w{3} \w{3}\s+\d+ \d+:\d+:\d+ \d{4})\]")


def job_seconds(log: str) -> dict[str, tuple[str, float]]:
    """Each finished job of a Snakemake log: its first output path -> (rule, seconds)."""
    started: dict[str, tuple[str, datetime.datetime, str]] = {}
    seconds: dict[str, tuple[str, float]] = {}
    stamp = rule = output = None
    for line in log.splitlines():
        if match := STAMP.match(line):
            stamp = datetime.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := re.match(r"(?:local)?rule (\w+):", line):
            rule, output = match.group(1), None
        elif rule and output is None and line.strip().startswith("output:"):
            output = line.strip()[len("output:"):].split(",")[0].strip()
        elif rule and (match := re.match(r"\s+jobid: (\d+)", line)):
            started[match.group(1)] = (rule, stamp, output)
            rule = None
        elif match := re.match(r"Finished jobid: (\d+)", line):
            if match.group(1) in started:
                name, begin, out = started.pop(match.group(1))
                if out:
                    seconds[out] = (name, (stamp - begin).total_seconds())
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", required=True)
    parser.add_argument("--log", required=True, help="the run's Snakemake log")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", default="workflow/baseline/default",
                        help="the baseline tables that price the oracle rules")
    parser.add_argument("--worst", type=int, default=10, help="jobs listed whose ratio is farthest from the median")
    args = parser.parse_args(argv)
    from rsscale.experiments import cost

    config = cost.load_study_config(args.configfile)
    jobs = cost.study_jobs(config, args.reference)
    rates, overhead, how = cost.calibrate(jobs, config, "cpu", args.threads)
    cost.project(jobs, rates, overhead)
    measured = job_seconds(Path(args.log).read_text())
    print(f"projection: {how}; run: {len(measured)} finished jobs in {args.log}")
    projected_by_output: dict[tuple[str, str], float] = {}  # a rule's jobs that share one output (profile_sizes)
    for job in jobs:
        if job.output in measured:
            key = (job.rule, job.output)
            projected_by_output[key] = projected_by_output.get(key, 0.0) + job.seconds
    pairs: dict[str, list[tuple[float, float, str]]] = {}
    for (rule, output), projected in projected_by_output.items():
        pairs.setdefault(rule, []).append((projected, measured[output][1], output))
    print(f"{'rule':<20} {'jobs':>5} {'projected s':>12} {'measured s':>11} {'ratio':>6} {'median per job':>15}")
    for rule, rows in sorted(pairs.items(), key=lambda item: -sum(m for _, m, _ in item[1])):
        projected, taken = sum(p for p, _, _ in rows), sum(m for _, m, _ in rows)
        median = statistics.median(m / p for p, m, _ in rows if p > 0)
        print(f"{rule:<20} {len(rows):>5} {projected:>12.0f} {taken:>11.0f} {taken / projected:>6.2f} {median:>15.2f}")
    for rule, rows in pairs.items():
        if len(rows) < 3:
            continue
        median = statistics.median(m / p for p, m, _ in rows if p > 0)
        far = sorted(rows, key=lambda r: -abs(math.log((r[1] or 0.5) / r[0]) - math.log(median)))
        print(f"\n{rule}: the {min(args.worst, len(far))} jobs farthest from its median ratio {median:.2f}")
        for projected, taken, output in far[:args.worst]:
            print(f"  {taken:6.0f} s measured {projected:7.1f} s projected  x{taken / projected:5.2f}  {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
