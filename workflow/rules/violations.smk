# The violation search for input-dependent sigma: certified balls on the ball oracle, points inside them
# where the smoothed classifier at the noise the method picks there says another class; the search writes the table
# itself (rsscale.experiments.violations).
if "violations" in config:
    add_to_study(tables=["violations"])


rule violation_search:
    """Per method (DDRS, QCRS, ANCER, their memory-fixed variants, ISRS and Cohen): inputs, points tried, violations
    found and the first violating example."""
    output:
        table_outputs("violations"),
    params:
        settings=as_json({k: v for k, v in config.get("violations", {}).items() if k != "seed"}),
        seed=config.get("violations", {}).get("seed", config["seed"]),
        out=out_prefix,
        partial=partial_rows,
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/tables/violations.log",
    shell:
        "rsscale violations --settings {params.settings} --seed {params.seed} --threads {threads}"
        " --out {params.out} --partial {params.partial} --discard-stale 2>&1 | tee {log}"
