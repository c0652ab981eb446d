# The claims ledger, evaluated against the tables every experiment's rule file added to the study
# (rsscale.experiments.claims; each experiment registers the tests of its tables). Included after the experiments.


rule table_claims:
    """The claims ledger evaluated against this study's tables: one verdict per survey claim."""
    input:
        ledger=os.path.join(workflow.basedir, "workflow", "config", "claims.yaml"),
        tables=[f"results/tables/{t}.csv" for t in STUDY_TABLES],
    output:
        table_outputs("claims"),
    params:
        tables=lambda w, output: os.path.dirname(output[0]),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/claims.log",
    shell:
        "rsscale claims --ledger {input.ledger} --tables {params.tables} --out {params.out} 2>&1 | tee {log}"
