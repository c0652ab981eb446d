# The curse of dimensionality: radii per norm as d grows (rsscale.experiments.dimension).
from rsscale.experiments import dimension

DIMENSION_RUNS = dimension.runs(PLAN)
if DIMENSION_RUNS:
    add_to_study(tables=["dimension", "dimension_slopes"], figures=["dimension"])


rule table_dimension:
    """ACR per norm and certified accuracy at fixed l2 / l_inf radii vs d; fitted log-log slopes."""
    input:
        DIMENSION_RUNS,
    output:
        table_outputs("dimension"),
        table_outputs("dimension_slopes"),
    params:
        l2=words(config.get("dimension", {}).get("l2_radii", [])),
        linf=words(config.get("dimension", {}).get("linf_radii", [])),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dimension.log",
    shell:
        "rsscale table dimension --inputs {input} --radii {params.l2} --linf-radii {params.linf}"
        " --out {params.out} 2>&1 | tee {log}"


rule figure_dimension:
    """ACR in l1, l2 and l_inf vs the input dimension d, per noise family."""
    input:
        DIMENSION_RUNS,
    output:
        report("figures/dimension.png", caption="../report/dimension.rst", category="Curse of dimensionality"),
        "figures/dimension.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/dimension.log",
    shell:
        "rsscale figure dimension --inputs {input} --out {params.out} > {log} 2>&1"
