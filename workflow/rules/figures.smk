rule figure_certified_accuracy:
    """Certified accuracy vs l2 radius, one line per sigma."""
    input:
        MAIN_RUNS,
    output:
        report("figures/certified_accuracy.png", caption="../report/certified_accuracy.rst", category="Trade-off"),
        "figures/certified_accuracy.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/certified_accuracy.log",
    shell:
        "rsscale figure certified-accuracy --inputs {input} --out figures/certified_accuracy > {log} 2>&1"


rule figure_sample_count:
    """Wall-clock and radius vs the sample count n."""
    input:
        SAMPLE_COUNT_RUNS,
    output:
        report("figures/sample_count.png", caption="../report/sample_count.rst", category="Inference cost"),
        "figures/sample_count.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/sample_count.log",
    shell:
        "rsscale figure sample-count --inputs {input} --out figures/sample_count > {log} 2>&1"


rule figure_dimension:
    """ACR in l1, l2 and l_inf vs the input dimension d, per noise family."""
    input:
        DIMENSION_RUNS,
    output:
        report("figures/dimension.png", caption="../report/dimension.rst", category="Curse of dimensionality"),
        "figures/dimension.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/dimension.log",
    shell:
        "rsscale figure dimension --inputs {input} --out figures/dimension > {log} 2>&1"


rule figure_dimension_remedies:
    """DSRS gain, projected-RS gain and cost per input vs d."""
    input:
        REMEDY_RUNS,
    output:
        report("figures/dimension_remedies.png", caption="../report/dimension_remedies.rst",
               category="Curse of dimensionality"),
        "figures/dimension_remedies.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/dimension_remedies.log",
    shell:
        "rsscale figure remedies --inputs {input} --out figures/dimension_remedies > {log} 2>&1"


rule figure_training_tradeoff:
    """Accuracy vs ACR per training objective across sigma; ACR vs training cost."""
    input:
        TRAINING_RUNS,
    output:
        report("figures/training_tradeoff.png", caption="../report/training_tradeoff.rst", category="Trade-off"),
        "figures/training_tradeoff.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/training_tradeoff.log",
    shell:
        "rsscale figure training --inputs {input} --out figures/training_tradeoff > {log} 2>&1"


rule figure_cost_frontier:
    """ACR vs forward passes (Cohen's sweep, ISS); certified accuracy at target radii vs passes (adaptive)."""
    input:
        SAMPLE_COUNT_RUNS + COST_RUNS,
    output:
        report("figures/cost_frontier.png", caption="../report/cost_frontier.rst", category="Inference cost"),
        "figures/cost_frontier.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/cost_frontier.log",
    shell:
        "rsscale figure cost --inputs {input} --out figures/cost_frontier > {log} 2>&1"


rule figure_extra_information:
    """ACR ratio to Cohen vs wall-clock ratio, one marker per method (hollow: flagged unsound)."""
    input:
        EXTRA_RUNS,
    output:
        report("figures/extra_information.png", caption="../report/extra_information.rst", category="Extra information"),
        "figures/extra_information.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/extra_information.log",
    shell:
        "rsscale figure extra-information --inputs {input} --out figures/extra_information > {log} 2>&1"
