rule figure_certified_accuracy:
    """Certified accuracy vs l2 radius, one line per sigma."""
    input:
        main_runs(),
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
        sample_count_runs(),
    output:
        report("figures/sample_count.png", caption="../report/sample_count.rst", category="Inference cost"),
        "figures/sample_count.pdf",
    conda:
        "../../environment.yml"
    log:
        "logs/figures/sample_count.log",
    shell:
        "rsscale figure sample-count --inputs {input} --out figures/sample_count > {log} 2>&1"
