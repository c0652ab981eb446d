# Denoised smoothing: a classifier trained without noise, certified bare and behind DnCNN denoisers trained for
# each (sigma, objective) in front of it, next to the main study's Gaussian-trained model on the same inputs
# (rsscale.experiments.denoised).
from rsscale.experiments import denoised

DENOISED_RUNS = denoised.runs(PLAN)
DENOISERS = denoised.denoisers(PLAN)  # composed checkpoint path -> its train-denoiser arguments
if DENOISED_RUNS:
    add_to_study(tables=["denoised"])


rule train_denoiser:
    """Train a DnCNN denoiser in front of a frozen classifier; write the composed f(D(x)) checkpoint."""
    input:
        data="results/data/{dataset}.pt",
        classifier=lambda w: DENOISERS[f"results/models/{w.dataset}/denoised/{w.name}.pt"]["classifier"],
    output:
        model="results/models/{dataset}/denoised/{name}.pt",
        sidecar="results/models/{dataset}/denoised/{name}.json",
        sha="results/models/{dataset}/denoised/{name}.pt.sha256",
    resources:
        gpu=1,
    params:
        args=lambda w, output: (
            "--objective {objective} --sigma {sigma} --depth {depth} --width {width} --epochs {epochs}"
            " --batch-size {batch_size} --lr {lr}"
        ).format(**DENOISERS[output.model]),
        seed=config["seed"],
    threads: 1
    conda:
        "../../environment.yml"
    log:
        "logs/train_denoiser/{dataset}/{name}.log",
    shell:
        "rsscale train-denoiser --data {input.data} --classifier {input.classifier} {params.args}"
        " --seed {params.seed} --threads {threads} --quiet --out {output.model} > {log} 2>&1"


rule table_denoised:
    """Denoised smoothing: a noise-free classifier bare, behind each denoiser, and a Gaussian-trained one (published
    numbers beside them when the section has a reference)."""
    input:
        DENOISED_RUNS,
    output:
        table_outputs("denoised"),
    params:
        radii=words(config["radii"]),
        reference=as_json(config.get("denoised", {}).get("reference")),
        out=out_prefix,
    conda:
        "../../environment.yml"
    log:
        "logs/tables/denoised.log",
    shell:
        "rsscale table denoised --inputs {input} --radii {params.radii} --reference {params.reference}"
        " --out {params.out} 2>&1 | tee {log}"
