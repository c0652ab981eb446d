#!/usr/bin/env bash
# The GPU check of the sampling engine, as one script for a machine with a CUDA device and PyTorch
# (no snakemake needed): the CUDA tests, the certify / forward-only throughput profile per model size
# with and without bf16 autocast + channels-last (and torch.compile for one model), and Cohen
# certification at n = 1e5 and 1e6 with wall-clock per input.  Writes CSVs and logs under $1
# (default results/gpu).  Usage: bash workflow/scripts/gpu_check.sh [OUTDIR]
set -uo pipefail
dev=${DEVICE:-cuda}
out=${1:-results/gpu}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
rs() { timeout "${STEP_TIMEOUT:-240}" python3 -m rsscale "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/device.txt"

timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k cuda 2>&1 | tail -n 15 | tee "$out/cuda_tests.log"

rs data --dataset digits --params '{"resolution": 8, "test_fraction": 0.2, "seed": 0}' --out /tmp/digits8.pt
rs data --dataset digits --params '{"resolution": 32, "test_fraction": 0.2, "seed": 0}' --out /tmp/digits32.pt
small='{"cnn-w8": {"arch": "cnn", "params": {"width": 8, "hidden": 64}},
        "cnn-w32": {"arch": "cnn", "params": {"width": 32, "hidden": 64}},
        "cnn-w128": {"arch": "cnn", "params": {"width": 128, "hidden": 64}},
        "mlp-h64": {"arch": "mlp", "params": {"hidden": [64]}}}'
large='{"cnn-w16": {"arch": "cnn", "params": {"width": 16, "hidden": 256}},
        "cnn-w64": {"arch": "cnn", "params": {"width": 64, "hidden": 256}}}'
fast='{"autocast": "bf16", "channels_last": true}'
for engine in '{}' "$fast"; do
  tag=$([ "$engine" = '{}' ] && echo fp32 || echo bf16cl)
  rs profile-sizes --data /tmp/digits8.pt --models "$small" --sigma 0.25 --batch-sizes 1000 10000 100000 \
    --batches 10 --repeats 5 --engine "$engine" --device "$dev" --out "$out/sizes_digits8_$tag.csv"
  rs profile-sizes --data /tmp/digits32.pt --models "$large" --sigma 0.25 --batch-sizes 1000 4000 \
    --batches 10 --repeats 5 --engine "$engine" --device "$dev" --out "$out/sizes_digits32_$tag.csv"
done

rs train --data /tmp/digits8.pt --arch cnn --arch-params '{"width": 32, "hidden": 64}' --sigma 0.25 --epochs 30 \
  --batch-size 256 --device "$dev" --quiet --out /tmp/cnn.pt
for n in 100000 1000000; do
  for engine in '{}' "$fast"; do
    tag=$([ "$engine" = '{}' ] && echo fp32 || echo bf16cl)
    params=$(python3 -c "import json,sys; e=json.loads(sys.argv[2]); print(json.dumps({'n0': 100, 'n': int(sys.argv[1]), 'alpha': 0.001, 'batch_size': 100000, **e}))" "$n" "$engine")
    start=$(date +%s.%N)
    rs certify --data /tmp/digits8.pt --checkpoint /tmp/cnn.pt \
      --method cohen --params "$params" --max-inputs 100 --pack 1 --device "$dev" --quiet --out "$out/cohen_n${n}_$tag.csv" \
      2>&1 | tail -n 2
    echo "n=$n $tag: $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)") s for 100 inputs" | tee -a "$out/certify_wall.txt"
  done
done

STEP_TIMEOUT=150 rs profile-sizes --data /tmp/digits8.pt --models '{"cnn-w32": {"arch": "cnn", "params": {"width": 32, "hidden": 64}}}' \
  --sigma 0.25 --batch-sizes 10000 --batches 10 --repeats 5 --engine '{"autocast": "bf16", "channels_last": true, "compile": true}' \
  --device "$dev" --out "$out/sizes_digits8_compile.csv"
echo done
