#!/usr/bin/env bash
# The big configs (cifar10, cifar10_dsrs, cifar10_training, imagenet) end to end on a GPU machine, on stand-in data
# in their formats (workflow/scripts/stand_in_data.py) and with a smoke overlay (workflow/scripts/smoke_overlay.py:
# each certification run's protocol as configured -- n0, n, alpha, engine -- on a few inputs, one epoch of
# training).  It checks that a user's first real run will not fail after hours; its numbers mean nothing.
# Writes one log per config, the tables of each, and summary.txt under $1 (default results/gpu_big_configs).
#
#   bash workflow/scripts/gpu_big_configs.sh [OUTDIR]
#
# LIMIT (seconds, default 420) caps each config's run; the configs run at once, CORES (default 4) cores each.
# Like gpu_study_check.sh, installs a folder .whl/ of wheels into /tmp/site first when present.
set -uo pipefail
out=$(realpath -m "${1:-results/gpu_big_configs}")
mkdir -p "$out"
repo=$PWD
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
if ! command -v rsscale >/dev/null; then
  mkdir -p /tmp/rsscale-bin
  printf '#!/bin/sh\nexec python3 -m rsscale "$@"\n' > /tmp/rsscale-bin/rsscale
  chmod +x /tmp/rsscale-bin/rsscale
  export PATH="/tmp/rsscale-bin:$PATH"
fi
data=/tmp/stand_in
python3 workflow/scripts/stand_in_data.py "$data" --cifar-train 1000 --cifar-test 10000 | tee "$out/summary.txt"

smoke() {  # smoke CONFIG: the config end to end with its overlay, in /tmp/big_CONFIG
  local name=$1 start=$SECONDS
  python3 workflow/scripts/smoke_overlay.py "workflow/config/$name.yaml" --data "$data" > "$out/overlay_$name.yaml"
  timeout "${LIMIT:-420}" python3 -m snakemake --snakefile "$repo/Snakefile" --directory "/tmp/big_$name" \
    --cores "${CORES:-4}" --configfile "$repo/workflow/config/$name.yaml" "$out/overlay_$name.yaml" \
    > "$out/${name}.log" 2>&1
  local rc=$?
  echo "$name: rc=$rc, $((SECONDS - start)) s; $(grep -o '[0-9]* of [0-9]* steps ([0-9]*%) done' "$out/${name}.log" \
    | tail -n 1)" >> "$out/summary.txt"
  mkdir -p "$out/$name" && cp -r "/tmp/big_$name/results/tables" "$out/$name/" 2>/dev/null
}

for name in cifar10 cifar10_dsrs cifar10_training imagenet; do smoke "$name" & done
wait
cat "$out/summary.txt"
