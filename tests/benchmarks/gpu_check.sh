#!/usr/bin/env bash
# The accelerator checks of the tensor core, in one script to rerun on any GPU machine
# (a few minutes): the training benchmark in fp32 and bf16 on 1 device (steps/s and the
# ratio against the hand-written jax.jit + optax loop on the same card), then the serving
# benchmark. It names the card first. Without a GPU visible to JAX it stops at once with
# exit status 2 and says why; any failed benchmark makes it exit 1 (after the others ran).
#
#   tests/benchmarks/gpu_check.sh                 (from the repository root)
#   PYTHON=/path/to/python tests/benchmarks/gpu_check.sh
#
# Needs jax with CUDA support in that Python (e.g. pip install "jax[cuda12]") beside jfx.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
LIMIT=${GPU_CHECK_TIMEOUT:-600}  # seconds per benchmark

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or lists none); nothing was run." >&2
  exit 2
fi
echo "== card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! "$PYTHON" -c 'import jax, sys; d = jax.devices()[0]; print("jax", jax.__version__, "devices:", jax.devices()); sys.exit(0 if d.platform == "gpu" else 1)'; then
  echo "gpu_check: JAX in $PYTHON does not see the GPU (its default device is not a GPU); install jax with CUDA" \
       "support, e.g. pip install \"jax[cuda12]\". Nothing was run." >&2
  exit 2
fi

status=0
run() {
  echo
  echo "== $*"
  timeout "$LIMIT" "$PYTHON" "$@" || { echo "gpu_check: FAILED (exit $?): $*" >&2; status=1; }
}
# Part 1 of the training benchmark only (interleaved rounds against the hand-written loop).
run tests/benchmarks/bench_training.py --device-check --precision fp32 --rows 131072 --epochs 3 --repeat 5
run tests/benchmarks/bench_training.py --device-check --precision bf16 --rows 131072 --epochs 3 --repeat 5
run tests/benchmarks/bench_serving.py
echo
if [[ $status -eq 0 ]]; then echo "gpu_check: all checks ran"; else echo "gpu_check: some checks FAILED" >&2; fi
exit $status
