# The engine profile: certification vs forward-only throughput per model of the main study, and per model size
# (rsscale.experiments.profile).
from rsscale.experiments import profile

PROFILES = profile.runs(PLAN)
PROFILE_SIZES = config["profile"].get("sizes")
add_to_study(tables=["profile"] + (["profile_sizes"] if PROFILE_SIZES else []))


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
    resources:
        gpu=1,
    params:
        batches=config["profile"]["batches"],
        repeats=config["profile"]["repeats"],
        batch_sizes=words(config["profile"]["batch_sizes"]),
        engine=as_json(config["profile"].get("engine", {})),
        seed=config["seed"],
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/profile/{dataset}/{name}.log",
    shell:
        "rsscale profile --data {input.data} --checkpoint {input.model} --batch-sizes {params.batch_sizes}"
        " --batches {params.batches} --repeats {params.repeats} --engine {params.engine} --seed {params.seed}"
        " --threads {threads} --out {output.csv} 2>&1 | tee {log}"


rule table_profile:
    """Throughput of certification next to the forward-only ceiling."""
    input:
        PROFILES,
    output:
        table_outputs("profile"),
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/profile.log",
    shell:
        "rsscale table profile --inputs {input} --out {params.out} > {log} 2>&1"


rule profile_sizes:
    """The engine profile per model size: certification / forward-only throughput of untrained models of each size."""
    input:
        f"results/data/{config['cohen']['dataset']}.pt",
    output:
        table_outputs("profile_sizes"),
        sidecar="results/tables/profile_sizes.json",
    resources:
        gpu=1,
    params:
        models=as_json((PROFILE_SIZES or {}).get("models", {})),
        batches=(PROFILE_SIZES or {}).get("batches", 1),
        repeats=(PROFILE_SIZES or {}).get("repeats", 1),
        batch_sizes=words(config["profile"]["batch_sizes"]),
        engine=as_json(config["profile"].get("engine", {})),
        variants=as_json((PROFILE_SIZES or {}).get("variants", [{}])),
        pack=(PROFILE_SIZES or {}).get("pack", 1),
        sigma=config["profile"]["sigmas"][0],
        seed=config["seed"],
        out=lambda w, output: output[0],
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/tables/profile_sizes.log",
    shell:
        "rsscale profile-sizes --data {input} --models {params.models} --sigma {params.sigma}"
        " --batch-sizes {params.batch_sizes} --batches {params.batches} --repeats {params.repeats}"
        " --engine {params.engine} --variants {params.variants} --pack {params.pack} --seed {params.seed}"
        " --threads {threads} --out {params.out} 2>&1 | tee {log}"
