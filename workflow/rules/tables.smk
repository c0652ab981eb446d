rule table_certified_accuracy:
    """Certified accuracy at fixed radii and ACR, one row per sigma (Cohen et al.'s table)."""
    input:
        main_runs(),
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
        sample_count_runs(),
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
        profile_runs(),
    output:
        multiext("results/tables/profile", ".csv", ".md", ".tex"),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/profile.log",
    shell:
        "rsscale table profile --inputs {input} --out results/tables/profile > {log} 2>&1"
