rule certify:
    """Certify test inputs with a method family: one CSV row per input, a JSON provenance sidecar."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: PLAN.runs[f"results/certify/{w.dataset}/{w.method}/{w.tag}.csv"]["model"],
        params_file=lambda w: PLAN.runs[f"results/certify/{w.dataset}/{w.method}/{w.tag}.csv"]["params_file"] or [],
    output:
        csv="results/certify/{dataset}/{method}/{tag}.csv",
        sidecar="results/certify/{dataset}/{method}/{tag}.json",
    params:
        args=lambda w, output: certify_args(PLAN.runs[output.csv]),
        seed=config["seed"],
        partial=partial_rows,
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/certify/{dataset}/{method}/{tag}.log",
    shell:
        "rsscale certify --data {input.data} --checkpoint {input.model} {params.args} --seed {params.seed}"
        " --threads {threads} --quiet --out {output.csv} --partial {params.partial} --discard-stale > {log} 2>&1"
