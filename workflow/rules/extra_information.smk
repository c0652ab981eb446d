# Extra information at extra cost (local information, ensembles, input-specific sigma): each family next to
# Cohen's CERTIFY on the same model, inputs and n (rsscale.experiments.extra_information).
from rsscale.experiments import extra_information

EXTRA = config.get("extra_information")
EXTRA_RUNS = extra_information.runs(PLAN)
if EXTRA_RUNS:
    add_to_study(tables=["extra_information"], figures=["extra_information"])


if EXTRA:

    rule fit_sween_weights:
        """SWEEN's ensemble weights, fitted on noisy held-out training examples (no member trains on them), members frozen."""
        input:
            data=f"results/data/{EXTRA['dataset']}.pt",
            members=extra_information.members(PLAN),
        output:
            extra_information.sween_weights(config),
        resources:
            gpu=1,
        params:
            sigma=EXTRA["sigma"],
            fit={"max_examples": 500, "copies": 8, "steps": 300, **EXTRA.get("sween_fit", {})},
            seed=config["seed"],
        threads: job_threads()
        conda:
            "../../environment.yml"
        log:
            "logs/sween/weights.log",
        shell:
            "rsscale fit-sween --data {input.data} --checkpoint {input.members} --sigma {params.sigma}"
            " --max-examples {params.fit[max_examples]} --copies {params.fit[copies]} --steps {params.fit[steps]}"
            " --seed {params.seed} --threads {threads} --out {output} > {log} 2>&1"


rule table_extra_information:
    """Local information, ensembles, input-specific sigma vs Cohen on the same inputs: ACR gain and its cost."""
    input:
        EXTRA_RUNS,
    output:
        table_outputs("extra_information"),
    params:
        radii=words(config["radii"]),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/extra_information.log",
    shell:
        "rsscale table extra-information --inputs {input} --radii {params.radii} --out {params.out} 2>&1 | tee {log}"


rule figure_extra_information:
    """ACR ratio to Cohen vs wall-clock ratio, one marker per method (hollow: flagged unsound)."""
    input:
        EXTRA_RUNS,
    output:
        report("figures/extra_information.png", caption="../report/extra_information.rst", category="Extra information"),
        "figures/extra_information.pdf",
    params:
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/figures/extra_information.log",
    shell:
        "rsscale figure extra-information --inputs {input} --out {params.out} > {log} 2>&1"
