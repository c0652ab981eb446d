# Seed replicates: the main sigma sweep and the shared-loop training objectives retrained from other seeds
# (rsscale.experiments.seed_replicates).
from rsscale.experiments import seed_replicates

SEED_SWEEP_RUNS = seed_replicates.sweep_runs(PLAN)
SEED_OBJECTIVE_RUNS = seed_replicates.objective_runs(PLAN)
if SEED_SWEEP_RUNS:
    add_to_study(tables=["seed_sweep"], figures=["seed_sweep"])
if SEED_OBJECTIVE_RUNS:
    add_to_study(tables=["seed_objectives"], figures=["seed_objectives"])


rule table_seed_sweep:
    """Certified accuracy at r = 0 and ACR per sigma, mean and 95 % t-interval over the seed replicates."""
    input:
        SEED_SWEEP_RUNS,
    output:
        table_outputs("seed_sweep"),
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/seed_sweep.log",
    shell:
        "rsscale table seed-sweep --inputs {input} --out {params.out} 2>&1 | tee {log}"


rule table_seed_objectives:
    """The shared-loop objectives ranked by ACR, with their spread and rank over the seed replicates."""
    input:
        SEED_OBJECTIVE_RUNS,
    output:
        table_outputs("seed_objectives"),
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/seed_objectives.log",
    shell:
        "rsscale table seed-objectives --inputs {input} --out {params.out} 2>&1 | tee {log}"


rule figure_seed_sweep:
    """Certified accuracy at r = 0 and ACR per sigma, one dot per seed."""
    input:
        SEED_SWEEP_RUNS,
    output:
        report("figures/seed_sweep.png", caption="../report/seed_sweep.rst", category="Trade-off"),
        "figures/seed_sweep.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/seed_sweep.log",
    shell:
        "rsscale figure seed-sweep --inputs {input} --out {params.out} > {log} 2>&1"


rule figure_seed_objectives:
    """Certified accuracy at r = 0 and ACR per training objective, one dot per seed."""
    input:
        SEED_OBJECTIVE_RUNS,
    output:
        report("figures/seed_objectives.png", caption="../report/seed_objectives.rst", category="Trade-off"),
        "figures/seed_objectives.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/seed_objectives.log",
    shell:
        "rsscale figure seed-objectives --inputs {input} --out {params.out} > {log} 2>&1"
