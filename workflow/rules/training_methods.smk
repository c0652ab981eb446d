# RS-aware training: one model per (objective, sigma), each certified with Cohen's CERTIFY
# (rsscale.experiments.training_methods).
from rsscale.experiments import training_methods

TRAINING_RUNS = training_methods.runs(PLAN)
if TRAINING_RUNS:
    add_to_study(tables=["training_methods"], figures=["training_tradeoff"])


rule table_training_methods:
    """RS-aware training vs Gaussian augmentation: certified accuracy, ACR, training time and passes (published
    numbers beside them when the section has a reference)."""
    input:
        TRAINING_RUNS,
    output:
        table_outputs("training_methods"),
    params:
        radii=words(config["radii"]),
        reference=as_json(config.get("training_methods", {}).get("reference")),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/training_methods.log",
    shell:
        "rsscale table training-methods --inputs {input} --radii {params.radii} --reference {params.reference}"
        " --out {params.out} 2>&1 | tee {log}"


rule figure_training_tradeoff:
    """Accuracy vs ACR per training objective across sigma; ACR vs training cost."""
    input:
        TRAINING_RUNS,
    output:
        report("figures/training_tradeoff.png", caption="../report/training_tradeoff.rst", category="Trade-off"),
        "figures/training_tradeoff.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/training_tradeoff.log",
    shell:
        "rsscale figure training-methods --inputs {input} --out {params.out} > {log} 2>&1"
