# rsscale: how randomized-smoothing certification scales with d, n and sigma.
#
#   snakemake --cores all                        the default (CPU, offline) study
#   snakemake --cores all --configfile workflow/config/<study>.yaml
#
# Data flows one way: config -> data -> train -> certify/profile -> tables, figures.
import os
import shutil

from snakemake.utils import min_version

min_version("9.0")


# a study config given with --configfile replaces the default one (it is not merged into it); runtime settings
# given with --config (e.g. shards=K) are not a study config
if not workflow.configfiles:

    configfile: os.path.join(workflow.basedir, "workflow", "config", "default.yaml")



include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_-]+",
    method=r"[a-z_]+",
    name=r"[^/]+",
    tag=r"[^/]+",


# the shared stages: datasets, training, certification (their arguments come from the plan the experiments fill)
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/certify.smk"
# the experiments: each rule file registers its runs, declares its rules and adds its tables and figures to the study
# (its module: src/rsscale/experiments/<name>.py)
include: "workflow/rules/certified_accuracy.smk"
include: "workflow/rules/sample_count.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/dimension.smk"
include: "workflow/rules/remedies.smk"
include: "workflow/rules/inference_cost.smk"
include: "workflow/rules/training_methods.smk"
include: "workflow/rules/seed_replicates.smk"
include: "workflow/rules/extra_information.smk"
include: "workflow/rules/family_cost.smk"
include: "workflow/rules/aces.smk"
include: "workflow/rules/denoised.smk"
include: "workflow/rules/incremental.smk"
include: "workflow/rules/soundness.smk"
include: "workflow/rules/mutation.smk"
include: "workflow/rules/violations.smk"
# after the experiments: what reads all their tables
include: "workflow/rules/claims.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/manifest.smk"


# everything, the provenance manifest last; the report too when a TeX installation is present (README)
rule all:
    input:
        study_outputs(),
        "results/manifest.json",
        ["paper/main.pdf"] if shutil.which("latexmk") else [],
    default_target: True
