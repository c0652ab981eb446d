# Certified accuracy over sigma (Cohen et al. 2019, Table 1): rsscale.experiments.certified_accuracy.
from rsscale.experiments import certified_accuracy

MAIN_RUNS = certified_accuracy.runs(PLAN)
add_to_study(tables=["certified_accuracy"], figures=["certified_accuracy"])


rule table_certified_accuracy:
    """Certified accuracy at fixed radii and ACR, one row per sigma (Cohen et al.'s table)."""
    input:
        MAIN_RUNS,
    output:
        table_outputs("certified_accuracy"),
    params:
        radii=words(config["radii"]),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/certified_accuracy.log",
    shell:
        "rsscale table certified-accuracy --inputs {input} --radii {params.radii} --out {params.out} 2>&1 | tee {log}"


rule figure_certified_accuracy:
    """Certified accuracy vs l2 radius, one line per sigma."""
    input:
        MAIN_RUNS,
    output:
        report("figures/certified_accuracy.png", caption="../report/certified_accuracy.rst", category="Trade-off"),
        "figures/certified_accuracy.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/certified_accuracy.log",
    shell:
        "rsscale figure certified-accuracy --inputs {input} --out {params.out} > {log} 2>&1"
