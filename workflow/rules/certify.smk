rule certify:
    """Certify test inputs with a method family: one CSV row per input, a JSON provenance sidecar."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: RUNS[f"results/certify/{w.dataset}/{w.method}/{w.tag}.csv"]["model"],
        params_file=lambda w: RUNS[f"results/certify/{w.dataset}/{w.method}/{w.tag}.csv"]["params_file"] or [],
    output:
        csv="results/certify/{dataset}/{method}/{tag}.csv",
        sidecar="results/certify/{dataset}/{method}/{tag}.json",
    params:
        args=lambda w, output: (
            "--method {method} --sigma {sigma} --params {p} --skip {skip} --pack {pack}{limit}{fitted}"
        ).format(
            fitted=f" --params-file {RUNS[output.csv]['params_file']}" if RUNS[output.csv]["params_file"] else "",
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


if EXTRA:

    rule fit_sween_weights:
        """SWEEN's ensemble weights, fitted on noisy training examples with the members frozen."""
        input:
            data=f"results/data/{EXTRA['dataset']}.pt",
            members=EXTRA_MEMBERS,
        output:
            SWEEN_WEIGHTS,
        params:
            sigma=EXTRA["sigma"],
            fit={"max_examples": 500, "copies": 8, "steps": 300, **EXTRA.get("sween_fit", {})},
            seed=config["seed"],
        threads: workflow.cores
        conda:
            "../../environment.yml"
        log:
            "logs/sween/weights.log",
        shell:
            "rsscale fit-sween --data {input.data} --checkpoint {input.members} --sigma {params.sigma}"
            " --max-examples {params.fit[max_examples]} --copies {params.fit[copies]} --steps {params.fit[steps]}"
            " --seed {params.seed} --threads {threads} --out {output} > {log} 2>&1"
