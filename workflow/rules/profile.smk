rule profile:
    """Certification vs forward-only throughput, same model, batch size and device; prints the ratio."""
    input:
        data="results/data/{dataset}.pt",
        model="results/models/{dataset}/{name}.pt",
    output:
        csv="results/profile/{dataset}/{name}.csv",
        md="results/profile/{dataset}/{name}.md",
        tex="results/profile/{dataset}/{name}.tex",
        sidecar="results/profile/{dataset}/{name}.json",
    params:
        batches=config["profile"]["batches"],
        repeats=config["profile"]["repeats"],
        batch_sizes=" ".join(str(b) for b in config["profile"]["batch_sizes"]),
        seed=config["seed"],
    threads: workflow.cores
    conda:
        "../../environment.yml"
    log:
        "logs/profile/{dataset}/{name}.log",
    shell:
        "rsscale profile --data {input.data} --checkpoint {input.model} --batch-sizes {params.batch_sizes}"
        " --batches {params.batches} --repeats {params.repeats} --seed {params.seed}"
        " --threads {threads} --out {output.csv} 2>&1 | tee {log}"
