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


# a study config given with --configfile replaces the default one (it is not merged into it)
if not config:

    configfile: os.path.join(workflow.basedir, "workflow", "config", "default.yaml")



include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset=r"[A-Za-z0-9_-]+",
    method=r"[a-z_]+",
    name=r"[^/]+",
    tag=r"[^/]+",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/certify.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/incremental.smk"
include: "workflow/rules/violations.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/aces.smk"
include: "workflow/rules/denoised.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/manifest.smk"


# everything, the provenance manifest last; the report too when a TeX installation is present (README)
rule all:
    input:
        study_outputs(),
        "results/manifest.json",
        ["paper/main.pdf"] if shutil.which("latexmk") else [],
    default_target: True
