# The sample count: Cohen's CERTIFY as n grows (rsscale.experiments.sample_count).
from rsscale.experiments import sample_count

SAMPLE_COUNT_RUNS = sample_count.runs(PLAN)
add_to_study(tables=["sample_count"], figures=["sample_count"])


rule table_sample_count:
    """Wall-clock and radius of CERTIFY as the sample count n grows."""
    input:
        SAMPLE_COUNT_RUNS,
    output:
        table_outputs("sample_count"),
    params:
        radii=words(config["radii"]),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/sample_count.log",
    shell:
        "rsscale table sample-count --inputs {input} --radii {params.radii} --out {params.out} 2>&1 | tee {log}"


rule figure_sample_count:
    """Wall-clock and radius vs the sample count n."""
    input:
        SAMPLE_COUNT_RUNS,
    output:
        report("figures/sample_count.png", caption="../report/sample_count.rst", category="Inference cost"),
        "figures/sample_count.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/sample_count.log",
    shell:
        "rsscale figure sample-count --inputs {input} --out {params.out} > {log} 2>&1"
