# Mutation suite: every declared mutant on the harness case that must catch it; the command writes both tables itself
# (rsscale.experiments.mutation).
MUTATION = config.get("mutation", {})
if "mutation" in config:
    add_to_study(tables=["mutation", "mutation_score"])


rule mutation_suite:
    """Deliberately wrong certifiers, each run on the soundness-harness case that must catch it, and the mutation score
    per family; survivors are listed in both tables (where the harness lacks power), not failed."""
    output:
        table_outputs("mutation"),
        table_outputs("mutation_score"),
    params:
        methods=f" --methods {words(MUTATION['methods'])}" if MUTATION.get("methods") else "",
        alpha=MUTATION.get("alpha", 0.05),
        seed=MUTATION.get("seed", config["seed"]),
        out=out_prefix,
        score_out=lambda wildcards, output: os.path.splitext(output[3])[0],
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/tables/mutation.log",
    shell:
        "rsscale mutants --alpha {params.alpha} --seed {params.seed} --threads {threads}{params.methods}"
        " --out {params.out} --score-out {params.score_out} 2>&1 | tee {log}"
