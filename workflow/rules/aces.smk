# ACES (Horvath et al. 2022): F = the main study's Gaussian-trained model at each sigma, an entropy selector
# on F's own samples, and a core model trained without noise; one sample set per input serves every theta
# (rsscale.experiments.aces).
from rsscale.experiments import aces

ACES = config.get("aces")
ACES_SWEEPS = aces.sweeps(PLAN)
if ACES_SWEEPS:
    add_to_study(tables=["aces"], figures=["aces_tradeoff"])


rule aces_sweep:
    """ACES theta sweep at one sigma: one CSV row per (test input, theta), theta = 1 (pure RS) included."""
    input:
        data="results/data/{dataset}.pt",
        model=lambda w: ACES_SWEEPS[f"results/aces/{w.dataset}/sigma{w.sigma}.csv"]["model"],
        core=lambda w: ACES_SWEEPS[f"results/aces/{w.dataset}/sigma{w.sigma}.csv"]["core"],
    output:
        csv="results/aces/{dataset}/sigma{sigma}.csv",
        sidecar="results/aces/{dataset}/sigma{sigma}.json",
    resources:
        gpu=1,
    params:
        thetas=words(ACES["thetas"]) if ACES else "",
        args=as_json(aces.sweep_params(config) if ACES else {}),
        max_inputs=ACES["max_inputs"] if ACES else 0,
        skip=ACES.get("skip", 1) if ACES else 1,
        pack=config["cohen"]["pack"],
        seed=config["seed"],
        partial=partial_rows,
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/aces/{dataset}/sigma{sigma}.log",
    shell:
        "rsscale aces --data {input.data} --checkpoint {input.model} --core {input.core} --sigma {wildcards.sigma}"
        " --thetas {params.thetas} --params {params.args} --max-inputs {params.max_inputs} --skip {params.skip} --pack {params.pack}"
        " --seed {params.seed} --threads {threads} --quiet --out {output.csv} --partial {params.partial} --discard-stale > {log} 2>&1"


rule table_aces:
    """ACES at each theta next to pure RS and the core model: clean and certified accuracy, ACR, selection rate
    (published numbers beside them when the section has a reference)."""
    input:
        list(ACES_SWEEPS),
    output:
        table_outputs("aces"),
    params:
        radii=words(config["radii"]),
        reference=as_json(config.get("aces", {}).get("reference")),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/aces.log",
    shell:
        "rsscale table aces --inputs {input} --radii {params.radii} --reference {params.reference}"
        " --out {params.out} 2>&1 | tee {log}"


rule figure_aces_tradeoff:
    """Clean accuracy vs ACR as theta varies, one curve per sigma, pure RS marked."""
    input:
        "results/tables/aces.csv",
    output:
        report("figures/aces_tradeoff.png", caption="../report/aces_tradeoff.rst", category="Trade-off"),
        "figures/aces_tradeoff.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/aces_tradeoff.log",
    shell:
        "rsscale figure aces --inputs {input} --out {params.out} > {log} 2>&1"
