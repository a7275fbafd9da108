#!/bin/bash
# One GPU call for the CUDA kernels (about 6-8 minutes on an H200): the kernel check of every
# variant, verify on both fixture models with and without the decode kernel, the bench with the
# split kernel and with the decode kernel for decode steps, and a small many-requests run.
# Needs the folder made by benchmarks/gpu/kernels-pack.sh (default .device; carry it).
#   usage (repository root): OUT=/some/dir bash benchmarks/gpu/kernels-run.sh [.device]
# Everything is written under $OUT; at the end it is packed into $OUT/kernels-results.tar.gz
# (and the short summary stays beside it as summary.txt).
set -uo pipefail
dev=${1:-.device}
OUT=${OUT:?set OUT to the output folder}
res=$OUT/kernels
mkdir -p "$res"
summary=$OUT/summary.txt
start=$(date +%s)
note() { echo "$*" | tee -a "$summary"; }
deadline=${DEADLINE_S:-540}   # every step ends by then, so the results are packed within a 600 s call
step() { # step NAME SECONDS command...: runs with a time limit, output to $res/NAME.log, rc noted
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  local left=$(( deadline - (t0 - start) ))
  if [ $left -lt 20 ]; then note "$name skipped: $(( t0 - start ))s used of ${deadline}s"; return 0; fi
  [ $limit -gt $left ] && limit=$left
  timeout "$limit" "$@" > "$res/$name.log" 2>&1
  local rc=$?
  note "$name rc=$rc $(( $(date +%s) - t0 ))s: $(grep -E 'PASS|FAIL|pass|cases|tokens/s' "$res/$name.log" | tail -1 | cut -c1-160)"
  return 0
}

note "commit $(cat "$dev/commit.txt" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null); $(date -u '+%Y-%m-%d %H:%M:%S') UTC; $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"

# 1. Kernel check: fma, mma and decode on random shapes, batched decode (vs reference and vs solo, bitwise), timings.
step kernel-check 200 bash "$dev/run-kc.sh" --cases 150 --batch-cases 30 --out "$res/kernel-check.md"
grep -E "kernel runs|batch cases pass|FAIL|DIFFERS" "$res/kernel-check.md" | head -20 >> "$summary"

verify() { # verify DECODE: both fixture models, float32 and bfloat16, kernels on, session path
  for model in tiny-llama3 tiny-llama2; do
    for dtype in float32 bfloat16; do
      step "verify-$model-$dtype-decode$1" 60 env BLOCKATTENTION_CUDA_DECODE=$1 \
        bash "$dev/run.sh" verify --model tests/fixtures/$model --golden tests/fixtures/$model --device cuda --dtype $dtype --session
    done
  done
}
bench() { # bench DECODE: llama-3.1-8b shape (random bf16 weights), 2K-32K
  step "bench-decode$1" 150 env BLOCKATTENTION_CUDA_DECODE=$1 \
    bash "$dev/run.sh" bench --preset llama-3.1-8b --device cuda --lengths 2048,4096,8192,16384,32768 \
      --repeats 3 --decode-tokens 64 --out "$res/bench-decode$1"
}

# 2. verify with the decode kernel; 3. bench with it, then with the split kernel (as before);
# then verify with the split kernel (the path verified on 2026-12-02), in order of need.
verify 1
bench 1
bench 0
note "decode tokens/s, split kernel (left) vs decode kernel (right):"
paste <(grep "decode:" "$res/bench-decode0.log" 2>/dev/null) <(grep "decode:" "$res/bench-decode1.log" 2>/dev/null | sed 's/^ *//') | tee -a "$summary"
verify 0

# 4. Many requests at once on CUDA (4K-token prompts), decode kernel on: a baseline for batching on CUDA.
elapsed=$(( $(date +%s) - start ))
if [ $elapsed -lt 400 ]; then
  step concurrency 90 env BLOCKATTENTION_CUDA_DECODE=1 \
    bash "$dev/run.sh" bench --preset llama-3.1-8b --device cuda --concurrency 1,8 --requests 8 --lengths 4096 \
      --decode-tokens 64 --repeats 1 --out "$res/concurrency"
else
  note "concurrency skipped: ${elapsed}s used"
fi

note "total $(( $(date +%s) - start ))s"
tar czf "$OUT/kernels-results.tar.gz" -C "$OUT" kernels && rm -rf "$res"
ls -la "$OUT"
