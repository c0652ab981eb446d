#!/usr/bin/env bash
# DSRS on a CUDA device with the paper's CIFAR-style setting scaled to the digits at 32x32 (d = 1,024):
# primary P_k with d - 2k = 12 (k = 506, as k = 1530 at d = 3,072), scaled Q at sigma_q = 0.4 for sigma = 0.5,
# n = 50,000 from each, next to Cohen with the same n; writes CSVs (sampling and radius seconds per input) under $1.
# Usage: bash workflow/scripts/gpu_dsrs_check.sh [OUTDIR]
set -uo pipefail
out=${1:-results/gpu_dsrs}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
dev=${DEVICE:-cuda}
rs() { timeout "${STEP_TIMEOUT:-240}" python3 -m rsscale "$@"; }
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k cuda 2>&1 | tail -n 3 | tee "$out/cuda_tests.log"
rs data --dataset digits --params '{"resolution": 32, "test_fraction": 0.2, "seed": 0}' --out /tmp/digits32.pt
rs train --data /tmp/digits32.pt --arch cnn --arch-params '{"width": 32, "hidden": 64}' --sigma 0.5 --epochs 30 \
  --batch-size 256 --device "$dev" --quiet --out /tmp/cnn32.pt
common='"n0": 100, "n": 50000, "alpha": 0.001, "batch_size": 50000'
rs certify --data /tmp/digits32.pt --checkpoint /tmp/cnn32.pt --method dsrs --skip 18 --max-inputs 20 --pack 1 \
  --params "{$common, \"secondary\": \"scaled\", \"sigma_q\": 0.4, \"k\": 506}" --device "$dev" --quiet \
  --out "$out/dsrs_scaled_k506.csv"
rs certify --data /tmp/digits32.pt --checkpoint /tmp/cnn32.pt --method cohen --skip 18 --max-inputs 20 --pack 1 \
  --params "{$common}" --device "$dev" --quiet --out "$out/cohen.csv"
python3 - "$out" <<'PY'
import csv, statistics, sys
out = sys.argv[1]
for name in ("dsrs_scaled_k506", "cohen"):
    rows = list(csv.DictReader(open(f"{out}/{name}.csv")))
    acr = sum(float(r["radius"]) * int(r["correct"]) for r in rows) / len(rows)
    cols = [c for c in ("seconds", "sampling_seconds", "radius_seconds", "np_radius") if c in rows[0]]
    med = {c: statistics.median(float(r[c]) for r in rows) for c in cols}
    print(name, len(rows), "inputs, ACR", round(acr, 4), {c: round(v, 4) for c, v in med.items()})
PY
