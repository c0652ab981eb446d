# The cost of every family per model evaluation next to Cohen's, on the extra-information runs' model, inputs and n,
# with each family's own computation apart (rsscale.experiments.family_cost).
from pathlib import Path

COST = (config.get("extra_information") or {}).get("cost")
COST_RUNS = {Path(path).stem.split("_sigma")[0]: PLAN.runs[path] for path in EXTRA_RUNS} if COST else {}
if COST_RUNS:
    add_to_study(tables=["family_cost"])
# the runs as `rsscale family-cost --runs` takes them (label -> method, checkpoints, sigma, params)
COST_ARGS = as_json({label: {"method": run["method"], "sigma": run["sigma"], "params": run["params"],
                             "checkpoint": run["model"], "params_file": run["params_file"]}
                     for label, run in COST_RUNS.items()})



rule family_cost:
    """Every family on the same model and inputs, in timed rounds: cost per model evaluation and own computation."""
    input:
        data=f"results/data/{(config.get('extra_information') or {}).get('dataset', 'none')}.pt",
        models=sorted({m for run in COST_RUNS.values() for m in ([run["model"]] if isinstance(run["model"], str)
                                                                   else run["model"])}),
        params_files=sorted({run["params_file"] for run in COST_RUNS.values() if run["params_file"]}),
    output:
        table_outputs("family_cost"),
        sidecar="results/tables/family_cost.json",
    params:
        runs=COST_ARGS,
        inputs=(COST or {}).get("inputs", 1),
        rounds=(COST or {}).get("rounds", 1),
        seed=config["seed"],
        out=out_prefix,
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/tables/family_cost.log",
    shell:
        "rsscale family-cost --data {input.data} --runs {params.runs} --inputs {params.inputs} --rounds {params.rounds}"
        " --seed {params.seed} --threads {threads} --out {params.out} 2>&1 | tee {log}"
