rule train:
    """Train a base classifier with a training objective and recipe at noise level sigma; held-out accuracy every
    epoch (the .training.csv log); a collapsed model fails the job unless its config marks collapse as a finding."""
    input:
        data=lambda w: f"results/data/{w.dataset}.pt",
        # a distillation objective (crt) trains from another model: its checkpoint
        teacher=lambda w: PLAN.models[f"results/models/{w.dataset}/{w.name}.pt"]["objective_params"].get("teacher", []),
    output:
        model="results/models/{dataset}/{name}.pt",
        sidecar="results/models/{dataset}/{name}.json",
        sha="results/models/{dataset}/{name}.pt.sha256",
        history="results/models/{dataset}/{name}.training.csv",
    resources:
        gpu=1,
    params:
        args=lambda w, output: train_args(PLAN.models[output.model]),
        seed=lambda w, output: PLAN.models[output.model]["seed"],
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/train/{dataset}/{name}.log",
    shell:
        "rsscale train --data {input.data} {params.args} --seed {params.seed}"
        " --threads {threads} --quiet --out {output.model} > {log} 2>&1"
