rule data:
    """Build a dataset file (embedded data: no download)."""
    output:
        "results/data/{dataset}.pt",
    params:
        name=lambda w: PLAN.dataset(w.dataset)["name"],
        args=lambda w: as_json(PLAN.dataset(w.dataset).get("params", {})),
    conda:
        "../../environment.yml"
    log:
        "logs/data/{dataset}.log",
    shell:
        "rsscale data --dataset {params.name} --params {params.args} --out {output} > {log} 2>&1"
