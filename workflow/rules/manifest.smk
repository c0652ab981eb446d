# The provenance manifest: the sha256 of every artifact under results/ and figures/, the config files,
# the git commit, package versions and device; `snakemake verify` recomputes the checksums.
import os
import shlex


# the config files of this run: those Snakemake loaded, the schema, and the claims ledger when present, each
# relative to the working directory (a rule's params: the same config named by another path must not rerun it)
MANIFEST_CONFIGS = list(
    dict.fromkeys(
        os.path.relpath(f)
        for f in [*workflow.configfiles, os.path.join(workflow.basedir, "workflow", "config", "schema.yaml")]
        + [f for f in ["workflow/config/claims.yaml"] if os.path.exists(f)]
    )
)


rule manifest:
    """Checksums of every artifact of the study (written after all of them), with the configs and provenance."""
    input:
        study_outputs(),
        "results/tables/numbers.tex",  # the paper's macros (rule paper_numbers)
    output:
        "results/manifest.json",
    params:
        configs=" ".join(f"--config {shlex.quote(f)}" for f in MANIFEST_CONFIGS),
    conda:
        "../../environment.yml"
    log:
        "logs/manifest.log",
    shell:
        "rsscale manifest --root . {params.configs} --out {output} results figures > {log} 2>&1"


# `snakemake verify --cores 1`: no input on purpose, so that Snakemake never rebuilds the manifest from changed
# artifacts before checking them; a missing results/manifest.json is reported by rsscale verify itself.
rule verify:
    """Recompute the checksums of results/manifest.json; fails with one line per changed or missing file."""
    params:
        manifest="results/manifest.json",
    conda:
        "../../environment.yml"
    log:
        "logs/verify.log",
    shell:
        "rsscale verify {params.manifest} 2>&1 | tee {log}"
