rule data:
    """Build a dataset file (embedded data: no download)."""
    output:
        "results/data/{dataset}.pt",
    params:
        name=lambda w: dataset_spec(w.dataset)["name"],
        args=lambda w: as_json(dataset_spec(w.dataset).get("params", {})),
    conda:
        "../../environment.yml"
    log:
        "logs/data/{dataset}.log",
    shell:
        "rsscale data --dataset {params.name} --params {params.args} --out {output} > {log} 2>&1"
