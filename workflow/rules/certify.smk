# Certification runs of the plan. With --config shards=K (K > 1; a runtime setting, never part of a result) each run
# is K jobs over whole packs (rsscale.shards), and a gather job writes the same result file the single job writes.
SHARDS = config.get("shards", 1)


# the command of a certification job, whole (params.shard empty) or one shard (params.shard: " --shard i/K")
CERTIFY_SHELL = (
    "rsscale certify --data {input.data} --checkpoint {input.model} {params.args} --seed {params.seed}"
    " --threads {threads} --quiet --out {output.csv} --partial {params.partial} --discard-stale{params.shard}"
    " > {log} 2>&1"
)


rule certify:
    """Certify test inputs with a method family: one CSV row per input, a JSON provenance sidecar."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: planned_run(w)["model"],
        params_file=lambda w: planned_run(w)["params_file"] or [],
    output:
        csv="results/certify/{dataset}/{method}/{tag}.csv",
        sidecar="results/certify/{dataset}/{method}/{tag}.json",
    resources:
        gpu=1,
    params:
        args=lambda w: certify_args(planned_run(w)),
        seed=config["seed"],
        partial=partial_rows,
        shard="",
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/certify/{dataset}/{method}/{tag}.log",
    shell:
        CERTIFY_SHELL


if SHARDS > 1:

    rule certify_shard:
        """Shard {wildcards.shard} of a certification run: its packs only, each with the run's seed for it."""
        input:
            **rules.certify.input,
        output:
            csv=temp(f"results/shards/certify/{{dataset}}/{{method}}/{{tag}}/{{shard}}-of-{SHARDS}.csv"),
            sidecar=temp(f"results/shards/certify/{{dataset}}/{{method}}/{{tag}}/{{shard}}-of-{SHARDS}.json"),
        wildcard_constraints:
            shard=r"\d+",
        resources:
            gpu=1,
        params:
            **{**rules.certify.params, "shard": lambda w: f" --shard {w.shard}/{SHARDS}"},
        threads: job_threads()
        conda:
            "../../environment.yml"
        log:
            f"logs/certify/{{dataset}}/{{method}}/{{tag}}.{{shard}}-of-{SHARDS}.log",
        shell:
            CERTIFY_SHELL

    rule gather_certify:
        """A certification run's result file from its shards: the single job's file, wall-clock columns aside."""
        input:
            csv=expand(
                "results/shards/certify/{{dataset}}/{{method}}/{{tag}}/{shard}-of-{count}.{ext}",
                shard=range(SHARDS),
                count=SHARDS,
                ext="csv",
            ),
            sidecars=expand(
                "results/shards/certify/{{dataset}}/{{method}}/{{tag}}/{shard}-of-{count}.{ext}",
                shard=range(SHARDS),
                count=SHARDS,
                ext="json",
            ),
        output:
            csv="results/certify/{dataset}/{method}/{tag}.csv",
            sidecar="results/certify/{dataset}/{method}/{tag}.json",
        localrule: True
        conda:
            "../../environment.yml"
        log:
            "logs/certify/{dataset}/{method}/{tag}.gather.log",
        shell:
            "rsscale gather --shards {input.csv} --out {output.csv} > {log} 2>&1"
    ruleorder: gather_certify > certify
