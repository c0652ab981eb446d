# The remedies for the curse of dimensionality across d, and the DSRS comparison section
# (rsscale.experiments.remedies).
from rsscale.experiments import remedies

REMEDY_RUNS = remedies.runs(PLAN)
DSRS_RUNS = remedies.dsrs_runs(PLAN)
if REMEDY_RUNS:
    add_to_study(tables=["dimension_remedies"], figures=["dimension_remedies"])
if DSRS_RUNS:
    add_to_study(tables=["dsrs"])


rule table_dimension_remedies:
    """DSRS vs NP on the same samples and projected vs plain RS at every d: ACR, gains, sampling and radius time."""
    input:
        REMEDY_RUNS,
    output:
        table_outputs("dimension_remedies"),
    params:
        l2=words(config.get("dimension", {}).get("l2_radii", [])),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dimension_remedies.log",
    shell:
        "rsscale table remedies --inputs {input} --radii {params.l2} --out {params.out} 2>&1 | tee {log}"


rule table_dsrs:
    """DSRS vs NP from the same P samples: certified accuracy at fixed l2 radii, ACR, radius-search time."""
    input:
        DSRS_RUNS,
    output:
        table_outputs("dsrs"),
    params:
        radii=words(config["radii"]),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dsrs.log",
    shell:
        "rsscale table remedies --inputs {input} --radii {params.radii} --out {params.out} 2>&1 | tee {log}"


rule figure_dimension_remedies:
    """DSRS gain, projected-RS gain and cost per input vs d."""
    input:
        REMEDY_RUNS,
    output:
        report("figures/dimension_remedies.png", caption="../report/dimension_remedies.rst",
               category="Curse of dimensionality"),
        "figures/dimension_remedies.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/dimension_remedies.log",
    shell:
        "rsscale figure remedies --inputs {input} --out {params.out} > {log} 2>&1"
