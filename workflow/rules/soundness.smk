# Soundness: every registered certifier on exact oracles, per worst-case position; the harness writes the table itself
# (rsscale.experiments.soundness).
if "soundness" in config:
    add_to_study(tables=["soundness"])


rule soundness_harness:
    """Violation rates of every registered certifier on exact oracles, per worst-case position, with Clopper-Pearson
    intervals, Holm's correction over each case's positions and each case's power; the job fails if a method claimed
    sound violates its certificates significantly more often than alpha at any position."""
    output:
        table_outputs("soundness"),
    params:
        trials=config.get("soundness", {}).get("trials", 0),
        alpha=config.get("soundness", {}).get("alpha", 0.05),
        seed=config.get("soundness", {}).get("seed", config["seed"]),
        out=out_prefix,
        partial=partial_rows,
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/tables/soundness.log",
    shell:
        "rsscale harness --trials {params.trials} --alpha {params.alpha} --seed {params.seed} --threads {threads}"
        " --out {params.out} --partial {params.partial} --discard-stale 2>&1 | tee {log}"
