# Incremental RS (IRS): the digits CNN of the sample-count sweep certified once with a cache, then each
# modification (int8 quantization, global pruning) certified from scratch and incrementally; the job itself writes
# the table (rsscale.experiments.incremental).
from rsscale.experiments import incremental

INCREMENTAL = config.get("incremental")
if INCREMENTAL:
    add_to_study(tables=["incremental"])


rule incremental:
    """IRS vs certification from scratch per model modification: wall-clock and its ratio, mean zeta, ACR and
    certified accuracy of both, agreement of decisions."""
    input:
        data=f"results/data/{config['cohen']['dataset']}.pt",
        model=incremental.model(PLAN) if INCREMENTAL else [],
    output:
        table_outputs("incremental"),
        "results/tables/incremental.json",
    params:
        args=lambda w: (
            "--sigma {sigma} --modifications {mods} --n0 {n0} --n {n} --n-incremental {n_incremental}"
            " --alpha {alpha} --alpha-zeta {alpha_zeta} --gamma {gamma} --max-inputs {max_inputs}"
            " --batch-size {batch_size} --pack {pack} --radii {radii}"
        ).format(
            mods=" ".join(INCREMENTAL["modifications"]),
            n0=config["cohen"]["n0"],
            alpha=config["cohen"]["alpha"],
            batch_size=config["cohen"]["batch_size"],
            pack=config["cohen"]["pack"],
            radii=words(config["radii"]),
            **INCREMENTAL,
        ),
        seed=config["seed"],
        out=out_prefix,
        partial=partial_rows,
    threads: job_threads()
    conda:
        "../../environment.yml"
    log:
        "logs/incremental.log",
    shell:
        "rsscale incremental --data {input.data} --checkpoint {input.model} {params.args} --seed {params.seed}"
        " --threads {threads} --out {params.out} --partial {params.partial} --discard-stale > {log} 2>&1"
