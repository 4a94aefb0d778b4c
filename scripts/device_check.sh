#!/usr/bin/env bash
# The GPU path of hessbench, checked on one CUDA device in about 8 minutes; everything goes
# into ONE file: ${1:-${OUT:-results/device_check}}/device_check.txt.
#
#   scripts/device_check.sh [OUT_DIR]            (run from anywhere; uses .venv/bin if present)
#
# Steps (each with its own time limit, 440 s at most; a failing or timed-out step is logged,
# a claims run stopped by its limit still writes the report of its finished items):
#   1. environment: torch, CUDA device, nvidia-smi
#   2. the tests that take a CUDA path (skipped without a GPU), and the distributed tests
#   3. pytest claims --device cuda at the smoke profile (all claims, 4 xdist workers)
#   4. pytest claims --device cuda --profile paper for the claims whose paper scale fits
#      (Monte-Carlo chain claims; the training-heavy ones need hours and are left out)
#   5. core timings: the bench table's timings on cuda (HVP / gradient on mlp, cnn,
#      ResNet-18; top-5, trace, density on mlp, cnn), bench compare on cnn, and top-5 /
#      trace / density on ResNet-18
#   6. hessbench.distributed on nccl: the example with torchrun, one rank per GPU
# The exit status is the number of failed steps (0: all passed).
set -u
cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -x "$BIN/python" ] || BIN="$(dirname "$(command -v python3)")"
PY="$BIN/python"
DIR="${1:-${OUT:-results/device_check}}"
mkdir -p "$DIR"
LOG="$DIR/device_check.txt"
: > "$LOG"
FAILED=0
START=$(date +%s)

step() {   # step NAME LIMIT_S COMMAND...: run COMMAND with a time limit, log it all
    local name="$1" limit="$2"; shift 2
    local t0=$(date +%s) rc
    echo "=== $name (limit ${limit}s): $*" >> "$LOG"
    timeout --signal=TERM --kill-after=15 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    echo "=== $name: exit $rc after $(( $(date +%s) - t0 ))s (total $(( $(date +%s) - START ))s)" >> "$LOG"
    echo >> "$LOG"
    [ "$rc" -eq 0 ] || FAILED=$((FAILED + 1))
    echo "$name: exit $rc"
}

CUDA_TESTS=(
    "tests/test_operators.py::test_vector_device_mismatch"
    "tests/experiments/test_sagun_outliers.py::test_runs_on_cuda"
    "tests/test_distributed.py"
)
PAPER_FIT="wei-schwab-trace-rate or wei-schwab-trace-noise-structure or zhu-anisotropic-escape or zhu-ou-escape-formula"

step environment 20 bash -c "$PY - <<'EOF'
import torch, hessbench
print('hessbench', hessbench.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)
assert torch.cuda.is_available(), 'no CUDA device: this script checks the GPU path'
print('device:', torch.cuda.get_device_name(0), torch.cuda.device_count(), 'device(s)')
EOF
rc=\$?
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
exit \$rc"

step cuda-tests 60 "$PY" -m pytest -q -p no:cacheprovider -rs "${CUDA_TESTS[@]}"

step claims-smoke-cuda 100 "$PY" -m pytest claims -q -p no:cacheprovider -n 4 --device cuda \
    --profile smoke --claims-out "$DIR/claims-smoke-cuda"

step claims-paper-fit 95 "$PY" -m pytest claims -q -p no:cacheprovider -n 4 --device cuda \
    --profile paper -k "$PAPER_FIT" --claims-out "$DIR/claims-paper"

step bench-timings-cuda 55 "$PY" - <<'EOF'
"""The README table's timings on cuda (hessbench.bench.measure.measure_table, float32):
HVP / gradient on mlp, cnn, ResNet-18; top-5, trace, density, spectrum on mlp and cnn."""
from dataclasses import asdict
from hessbench.bench.measure import measure_table

for dev in measure_table(["cuda"], repeats=3):
    print(dev.label)
    for w in dev.workloads:
        print(asdict(w))
EOF

step bench-compare-cuda 30 "$BIN/hessbench" bench compare --device cuda --workload cnn --markdown

step resnet18-solvers 40 "$PY" - <<'EOF'
"""Top-5 (eigsh), trace (Hutch++) and density (SLQ) on ResNet-18, cuda, float32."""
import torch
from hessbench.bench.impls import Hessbench
from hessbench.bench.timing import time_call
from hessbench.bench.workloads import get_workload, gradient_fn

w = get_workload("resnet18", "cuda")
hb_impl = Hessbench()
op = hb_impl.prepare(w)
grad = time_call(gradient_fn(w), 3, device=w.device).median
hvp = time_call(hb_impl.hvp(op), 3, device=w.device).median
print(f"resnet18 ({w.num_params} params, {torch.cuda.get_device_name(0)}): gradient "
      f"{grad * 1e3:.1f} ms, HVP {hvp * 1e3:.1f} ms ({hvp / grad:.2f}x)")
for name, call in [("top-5 eigsh", hb_impl.top_eigenvalues(op, 5)),
                   ("trace hutch++", hb_impl.trace(op)), ("density slq", hb_impl.density(op))]:
    t = time_call(call, 1, warmup=0, device=w.device).median
    print(f"resnet18 {name}: {t:.2f} s")
print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
EOF

step distributed-nccl 40 "$BIN/torchrun" --nproc-per-node 1 -m hessbench.examples.distributed_spectrum

echo "=== done: $FAILED failed step(s), $(( $(date +%s) - START ))s in all" >> "$LOG"
echo "log: $LOG ($FAILED failed step(s))"
exit "$FAILED"
