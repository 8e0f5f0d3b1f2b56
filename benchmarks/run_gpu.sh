#!/usr/bin/env bash
# The GPU run of issue 16 in one short lease (device: one H200), ordered so that a run stopped by
# the lease's limit keeps what it finished: the correctness check, the small CNN cases, then
# PreResNet-110 on 50,000 samples. Each part has its own time limit; logs and tables go to $OUT
# (or benchmarks/results/gpu/ when OUT is unset).
# Usage: bash benchmarks/run_gpu.sh [STEPS] [PARTS] [LIBRARIES]
#   PARTS: any of "check solver cnn big"; LIBRARIES: the step task's libraries on PreResNet-110
#   (default all: curvscope pyhessian curvlinops eigenthings)
# e.g. bash benchmarks/run_gpu.sh 1 big   (PreResNet-110 alone, up to 540 s)
#      bash benchmarks/run_gpu.sh 1 "check solver big" "pyhessian curvlinops eigenthings"
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT/cnn" "$OUT/big"
export PYTHONUNBUFFERED=1 PYTHONPATH=src:.:build/peers
STEPS=${1:-1}
PARTS=${2:-check solver cnn big}
LIBRARIES=${3:-curvscope pyhessian curvlinops eigenthings}
BIG_LIMIT=290  # after the other parts; more when the small CNN cases are left out
case " $PARTS " in *" cnn "*) ;; *) BIG_LIMIT=390 ;; esac
[ "$PARTS" = big ] && BIG_LIMIT=540
run() {
  local limit=$1 rc; shift
  echo "== $(date +%T) $* (limit ${limit}s)"
  timeout "$limit" "$@"; rc=$?  # 124: stopped at the limit
  echo "== $(date +%T) exit $rc"
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
  python3 -c "import torch, numpy, scipy; print('torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
  case " $PARTS " in *" check "*) run 100 python3 benchmarks/gpu_check.py ;; esac
  case " $PARTS " in *" solver "*) run 60 python3 -m benchmarks.solver_overhead --device cuda ;; esac
  case " $PARTS " in *" cnn "*) run 170 python3 -W ignore -m benchmarks --device cuda \
    --cases cnn cnn_batched --tasks products step memory --repeats 1 --out "$OUT/cnn" ;; esac
  case " $PARTS " in *" big "*) run "$BIG_LIMIT" python3 -W ignore -m benchmarks --device cuda \
    --cases preresnet110 --tasks step --steps "$STEPS" --step-libraries $LIBRARIES \
    --out "$OUT/big" ;; esac
} 2>&1 | tee "$OUT/log"
