# The inference cost: ISS and adaptive certification next to the sample-count sweep, same model and inputs
# (rsscale.experiments.inference_cost).
from rsscale.experiments import inference_cost, sample_count

COST_RUNS = inference_cost.runs(PLAN)
if COST_RUNS:
    add_to_study(tables=["inference_cost"], figures=["cost_frontier"])


rule table_inference_cost:
    """ISS and adaptive certification vs Cohen's sample-count sweep: passes, ACR, decisions at target radii."""
    input:
        sample_count.runs(PLAN) + COST_RUNS,
    output:
        table_outputs("inference_cost"),
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/inference_cost.log",
    shell:
        "rsscale table inference-cost --inputs {input} --out {params.out} 2>&1 | tee {log}"


rule figure_cost_frontier:
    """ACR vs forward passes (Cohen's sweep, ISS); certified accuracy at target radii vs passes (adaptive)."""
    input:
        sample_count.runs(PLAN) + COST_RUNS,
    output:
        report("figures/cost_frontier.png", caption="../report/cost_frontier.rst", category="Inference cost"),
        "figures/cost_frontier.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/cost_frontier.log",
    shell:
        "rsscale figure inference-cost --inputs {input} --out {params.out} > {log} 2>&1"
