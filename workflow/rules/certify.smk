rule certify_cohen:
    """Cohen et al.'s CERTIFY on the test set: one CSV row per input, a JSON provenance sidecar."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: model_path(w.dataset, config["training"]["objective"], w.sigma),
    output:
        csv="results/certify/{dataset}/cohen/sigma{sigma}_n{n}_{inputs}.csv",
        sidecar="results/certify/{dataset}/cohen/sigma{sigma}_n{n}_{inputs}.json",
    params:
        method_params=lambda w: as_json(
            {
                "n0": config["cohen"]["n0"],
                "n": int(w.n),
                "alpha": config["cohen"]["alpha"],
                "batch_size": config["cohen"]["batch_size"],
            }
        ),
        max_inputs=lambda w: max_inputs_arg(w.inputs),
        skip=config["cohen"]["skip"],
        pack=config["cohen"]["pack"],
        seed=config["seed"],
    threads: workflow.cores
    conda:
        "../../environment.yml"
    log:
        "logs/certify/{dataset}/cohen/sigma{sigma}_n{n}_{inputs}.log",
    shell:
        "rsscale certify --data {input.data} --checkpoint {input.model} --method cohen"
        " --sigma {wildcards.sigma} --params {params.method_params} --skip {params.skip}"
        " {params.max_inputs} --pack {params.pack} --seed {params.seed} --threads {threads}"
        " --quiet --out {output.csv} > {log} 2>&1"
