rule table_certified_accuracy:
    """Certified accuracy at fixed radii and ACR, one row per sigma (Cohen et al.'s table)."""
    input:
        MAIN_RUNS,
    output:
        multiext("results/tables/certified_accuracy", ".csv", ".md", ".tex"),
    params:
        radii=" ".join(str(r) for r in config["radii"]),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/certified_accuracy.log",
    shell:
        "rsscale table certified-accuracy --inputs {input} --radii {params.radii}"
        " --out results/tables/certified_accuracy 2>&1 | tee {log}"


rule table_sample_count:
    """Wall-clock and radius of CERTIFY as the sample count n grows."""
    input:
        SAMPLE_COUNT_RUNS,
    output:
        multiext("results/tables/sample_count", ".csv", ".md", ".tex"),
    params:
        radii=" ".join(str(r) for r in config["radii"]),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/sample_count.log",
    shell:
        "rsscale table sample-count --inputs {input} --radii {params.radii}"
        " --out results/tables/sample_count 2>&1 | tee {log}"


rule table_profile:
    """Throughput of certification next to the forward-only ceiling."""
    input:
        [profile_path(m) for m in PROFILE_MODELS],
    output:
        multiext("results/tables/profile", ".csv", ".md", ".tex"),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/profile.log",
    shell:
        "rsscale table profile --inputs {input} --out results/tables/profile > {log} 2>&1"


rule table_dimension:
    """ACR per norm and certified accuracy at fixed l2 / l_inf radii vs d; fitted log-log slopes."""
    input:
        DIMENSION_RUNS,
    output:
        multiext("results/tables/dimension", ".csv", ".md", ".tex"),
        multiext("results/tables/dimension_slopes", ".csv", ".md", ".tex"),
    params:
        l2=" ".join(str(r) for r in config.get("dimension", {}).get("l2_radii", [])),
        linf=" ".join(str(r) for r in config.get("dimension", {}).get("linf_radii", [])),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dimension.log",
    shell:
        "rsscale table dimension --inputs {input} --radii {params.l2} --linf-radii {params.linf}"
        " --out results/tables/dimension 2>&1 | tee {log}"
