rule train:
    """Train a base classifier with a training objective at noise level sigma."""
    input:
        "results/data/{dataset}.pt",
    output:
        model="results/models/{dataset}/{objective}_sigma{sigma}.pt",
        sidecar="results/models/{dataset}/{objective}_sigma{sigma}.json",
        sha="results/models/{dataset}/{objective}_sigma{sigma}.pt.sha256",
    params:
        arch=config["model"]["arch"],
        arch_params=as_json(config["model"].get("params", {})),
        epochs=config["training"]["epochs"],
        batch_size=config["training"]["batch_size"],
        lr=config["training"]["lr"],
        seed=config["seed"],
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/train/{dataset}/{objective}_sigma{sigma}.log",
    shell:
        "rsscale train --data {input} --arch {params.arch} --arch-params {params.arch_params}"
        " --objective {wildcards.objective} --sigma {wildcards.sigma} --epochs {params.epochs}"
        " --batch-size {params.batch_size} --lr {params.lr} --seed {params.seed}"
        " --threads {threads} --quiet --out {output.model} > {log} 2>&1"
