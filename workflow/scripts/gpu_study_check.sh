#!/usr/bin/env bash
# The study on a GPU machine, as one script: every method family certifying on CUDA (the soundness
# harness's cases, workflow/scripts/gpu_families.py), the CUDA tests, the quick study end to end and the
# default study end to end (time-capped), both under Snakemake with certification on the GPU (the CLI's
# device defaults to CUDA when present).  Writes logs, the families table and a tarball of the studies'
# tables and figures under $1 (default results/gpu_study).
#
#   bash workflow/scripts/gpu_study_check.sh [OUTDIR]
#
# Needs PyTorch with CUDA and Snakemake; a folder .whl/ of wheels (Snakemake and what it needs) is installed
# into /tmp/site first when present (for a machine with no package index).  DEFAULT_LIMIT (seconds, default
# 480) caps the default study; its log says how many of its jobs finished.  STUDIES (default "default quick")
# names the studies to run.  Certification jobs get 2 threads
# each (--set-threads), so several share the GPU at once.
set -uo pipefail
out=${1:-results/gpu_study}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! command -v rsscale >/dev/null; then  # the console script, for a checkout that is not pip-installed
  mkdir -p /tmp/rsscale-bin
  printf '#!/bin/sh\nexec python3 -m rsscale "$@"\n' > /tmp/rsscale-bin/rsscale
  chmod +x /tmp/rsscale-bin/rsscale
  export PATH="/tmp/rsscale-bin:$PATH"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, snakemake; print('torch', torch.__version__, torch.cuda.get_device_name(), '| snakemake', snakemake.__version__)"
  nproc; } > "$out/device.txt" 2>&1
cat "$out/device.txt"

study() {  # study NAME CORES LIMIT [snakemake args]: one study end to end, its wall-clock and job count logged
  local name=$1 cores=$2 limit=$3; shift 3
  local start=$SECONDS
  timeout "$limit" python3 -m snakemake --snakefile "$PWD/Snakefile" --directory "/tmp/$name" --cores "$cores" \
    --set-threads certify=2 aces_sweep=2 fit_sween_weights=2 incremental=2 "$@" > "$out/${name}_study.log" 2>&1
  local rc=$?
  echo "$name study: rc=$rc, $((SECONDS - start)) s, $(grep -c '^Finished job' "$out/${name}_study.log") jobs finished;" \
       "$(grep -o '[0-9]* of [0-9]* steps ([0-9]*%) done' "$out/${name}_study.log" | tail -n 1)" | tee -a "$out/summary.txt"
}

studies=" ${STUDIES:-default quick} "
[[ $studies == *" default "* ]] && study default 10 "${DEFAULT_LIMIT:-480}" &
[[ $studies == *" quick "* ]] && study quick 4 200 --configfile "$PWD/workflow/config/quick.yaml"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k cuda > "$out/cuda_tests.log" 2>&1
echo "CUDA tests: $(tail -n 1 "$out/cuda_tests.log")" | tee -a "$out/summary.txt"
timeout 200 python3 workflow/scripts/gpu_families.py --device cuda --trials "${FAMILY_TRIALS:-1000}" \
  --out "$out/families_cuda.csv" > "$out/families_cuda.log" 2>&1
echo "families: $(tail -n 1 "$out/families_cuda.log")" | tee -a "$out/summary.txt"
wait
for name in quick default; do
  [ -d "/tmp/$name/results/tables" ] && echo "$name: $(python3 workflow/scripts/compare_tables.py \
      "workflow/baseline/$name" "/tmp/$name/results/tables" 2>&1 | tail -n 1) (GPU draws against the CPU baseline)" \
      | tee -a "$out/summary.txt"
done
tar -czf "$out/studies.tar.gz" -C /tmp --ignore-failed-read quick/results/tables quick/figures default/results/tables \
  default/figures 2>/dev/null
ls -la "$out"
