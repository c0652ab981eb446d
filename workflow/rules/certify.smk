rule certify:
    """Certify test inputs with a method family: one CSV row per input, a JSON provenance sidecar."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: RUNS[f"results/certify/{w.dataset}/{w.method}/{w.tag}.csv"]["model"],
    output:
        csv="results/certify/{dataset}/{method}/{tag}.csv",
        sidecar="results/certify/{dataset}/{method}/{tag}.json",
    params:
        args=lambda w, output: (
            "--method {method} --sigma {sigma} --params {p} --skip {skip} --pack {pack}{limit}"
        ).format(
            p=as_json(RUNS[output.csv]["params"]),
            limit=f" --max-inputs {RUNS[output.csv]['max_inputs']}" if RUNS[output.csv]["max_inputs"] else "",
            **RUNS[output.csv],
        ),
        seed=config["seed"],
    threads: workflow.cores
    conda:
        "../../environment.yml"
    log:
        "logs/certify/{dataset}/{method}/{tag}.log",
    shell:
        "rsscale certify --data {input.data} --checkpoint {input.model} {params.args} --seed {params.seed}"
        " --threads {threads} --quiet --out {output.csv} > {log} 2>&1"
