# rsscale: how randomized-smoothing certification scales with d, n and sigma.
#
#   snakemake --cores all                        the default (CPU, offline) study
#   snakemake --cores all --configfile workflow/config/<study>.yaml
#
# Data flows one way: config -> data -> train -> certify/profile -> tables, figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "workflow/config/default.yaml"


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
include: "workflow/rules/figures.smk"


rule all:
    input:
        study_outputs(),
    default_target: True
