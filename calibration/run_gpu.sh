#!/usr/bin/env bash
# Calibrate a CUDA GPU: run from the repository root on the GPU machine.
#
#   OUT=/some/folder bash calibration/run_gpu.sh
#
# Writes $OUT/<device-id>.json (e.g. h100-sxm.json: every measured op in bf16, fp8, fp16, tf32, fp32,
# 2:4 sparse GEMMs, and end-to-end GPT-2/BERT/ResNet-50 steps in bf16), $OUT/calibrate-gpu.log and
# $OUT/gpu-info.txt. Needs python3 with torch (CUDA), numpy and PyYAML; dcsim need not be installed.
# Copy the profile into calibration/profiles/ and run `dcsim calibrate --report`.
# BUDGET_S caps the op measurements (seconds); the end-to-end models take about a minute more.
set -uo pipefail
OUT="${OUT:-calibration/profiles}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RUN_DIR="$PWD"
BASE_PYTHONPATH="${PYTHONPATH:-}"
export PYTHONPATH="$PWD${BASE_PYTHONPATH:+:$BASE_PYTHONPATH}" PYTHONUNBUFFERED=1
if ! python3 -c "import dcsim" 2>/dev/null; then
  # The GPU image lacks the simulator's own dependencies (simpy, pydantic, ...) that dcsim/__init__.py
  # pulls in; the harness needs none of them, so run it from a copy whose top-level __init__ is empty.
  shim="$(mktemp -d)"; cp -r dcsim "$shim/"; : > "$shim/dcsim/__init__.py"
  export PYTHONPATH="$shim${BASE_PYTHONPATH:+:$BASE_PYTHONPATH}"
  RUN_DIR="$shim"  # python -m puts the working folder first on sys.path
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$OUT/gpu-info.txt" 2>&1
cat "$OUT/gpu-info.txt"
(cd "$RUN_DIR" && exec timeout "${GPU_TIMEOUT_S:-380}" python3 -m dcsim.calibrate --device "${DEVICE:-cuda}" \
  --budget-s "${BUDGET_S:-250}" --out "$OUT" ${EXTRA_ARGS:-}) 2>&1 | tee "$OUT/calibrate-gpu.log"
status=${PIPESTATUS[0]}
ls -la "$OUT"
exit "$status"
