rule table_certified_accuracy:
    """Certified accuracy at fixed radii and ACR, one row per sigma (Cohen et al.'s table)."""
    input:
        MAIN_RUNS,
    output:
        table_outputs("certified_accuracy"),
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
        table_outputs("sample_count"),
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
        table_outputs("profile"),
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
        table_outputs("dimension"),
        table_outputs("dimension_slopes"),
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


rule table_dimension_remedies:
    """DSRS vs NP on the same samples and projected vs plain RS at every d: ACR, gains, sampling and radius time."""
    input:
        REMEDY_RUNS,
    output:
        table_outputs("dimension_remedies"),
    params:
        l2=" ".join(str(r) for r in config.get("dimension", {}).get("l2_radii", [])),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dimension_remedies.log",
    shell:
        "rsscale table remedies --inputs {input} --radii {params.l2} --out results/tables/dimension_remedies"
        " 2>&1 | tee {log}"


rule table_dsrs:
    """DSRS vs NP from the same P samples: certified accuracy at fixed l2 radii, ACR, radius-search time."""
    input:
        DSRS_RUNS,
    output:
        table_outputs("dsrs"),
    params:
        radii=" ".join(str(r) for r in config["radii"]),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/dsrs.log",
    shell:
        "rsscale table remedies --inputs {input} --radii {params.radii} --out results/tables/dsrs 2>&1 | tee {log}"


rule table_claims:
    """The claims ledger evaluated against this study's tables: one verdict per survey claim."""
    input:
        ledger=os.path.join(workflow.basedir, "workflow", "config", "claims.yaml"),
        tables=[f"results/tables/{t}.csv" for t in study_tables()],
    output:
        table_outputs("claims"),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/claims.log",
    shell:
        "rsscale claims --ledger {input.ledger} --tables results/tables --out results/tables/claims 2>&1 | tee {log}"


rule table_training_methods:
    """RS-aware training vs Gaussian augmentation: certified accuracy, ACR, training time and passes (published
    numbers beside them when the section has a reference)."""
    input:
        TRAINING_RUNS,
    output:
        table_outputs("training_methods"),
    params:
        radii=" ".join(str(r) for r in config["radii"]),
        reference=as_json(config.get("training_methods", {}).get("reference")),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/training_methods.log",
    shell:
        "rsscale table training --inputs {input} --radii {params.radii} --reference {params.reference}"
        " --out results/tables/training_methods 2>&1 | tee {log}"


rule table_soundness:
    """Violation rates of every registered certifier on exact oracles, with Clopper-Pearson intervals; the job
    fails if a method claimed sound violates its certificates significantly more often than alpha."""
    output:
        table_outputs("soundness"),
    params:
        trials=config.get("soundness", {}).get("trials", 0),
        alpha=config.get("soundness", {}).get("alpha", 0.05),
        seed=config.get("soundness", {}).get("seed", config["seed"]),
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/tables/soundness.log",
    shell:
        "rsscale harness --trials {params.trials} --alpha {params.alpha} --seed {params.seed} --threads {threads}"
        " --out results/tables/soundness 2>&1 | tee {log}"


rule table_inference_cost:
    """ISS and adaptive certification vs Cohen's sample-count sweep: passes, ACR, decisions at target radii."""
    input:
        SAMPLE_COUNT_RUNS + COST_RUNS,
    output:
        table_outputs("inference_cost"),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/inference_cost.log",
    shell:
        "rsscale table cost --inputs {input} --out results/tables/inference_cost 2>&1 | tee {log}"


rule table_extra_information:
    """Local information, ensembles, input-specific sigma vs Cohen on the same inputs: ACR gain and its cost."""
    input:
        EXTRA_RUNS,
    output:
        table_outputs("extra_information"),
    params:
        radii=" ".join(str(r) for r in config["radii"]),
    conda:
        "../../environment.yml"
    log:
        "logs/tables/extra_information.log",
    shell:
        "rsscale table extra-information --inputs {input} --radii {params.radii}"
        " --out results/tables/extra_information 2>&1 | tee {log}"
