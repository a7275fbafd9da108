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
step() { # step NAME SECONDS command...: runs with a time limit, output to $res/NAME.log, rc noted
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$res/$name.log" 2>&1
  local rc=$?
  note "$name rc=$rc $(( $(date +%s) - t0 ))s: $(grep -E 'PASS|FAIL|pass|cases|tokens/s' "$res/$name.log" | tail -1 | cut -c1-160)"
  return 0
}

note "commit $(cat "$dev/commit.txt" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null); $(date -u '+%Y-%m-%d %H:%M:%S') UTC; $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"

# 1. Kernel check: fma, mma and decode on random shapes, batched decode (vs reference and vs solo, bitwise), timings.
step kernel-check 240 bash "$dev/run-kc.sh" --cases 150 --batch-cases 30 --out "$res/kernel-check.md"
grep -E "kernel runs|batch cases pass|FAIL|DIFFERS" "$res/kernel-check.md" | head -20 >> "$summary"

# 2. verify on both fixture models, float32 and bfloat16, kernels on; decode kernel off, then on.
for decode in 0 1; do
  for model in tiny-llama3 tiny-llama2; do
    for dtype in float32 bfloat16; do
      step "verify-$model-$dtype-decode$decode" 90 env BLOCKATTENTION_CUDA_DECODE=$decode \
        bash "$dev/run.sh" verify --model tests/fixtures/$model --golden tests/fixtures/$model --device cuda --dtype $dtype --session
    done
  done
done

# 3. bench, llama-3.1-8b shape (random bf16 weights): the split kernel for decode (as before), then the decode kernel.
for decode in 0 1; do
  step "bench-decode$decode" 200 env BLOCKATTENTION_CUDA_DECODE=$decode \
    bash "$dev/run.sh" bench --preset llama-3.1-8b --device cuda --lengths 2048,4096,8192,16384,32768 \
      --repeats 3 --decode-tokens 64 --out "$res/bench-decode$decode"
  grep -E "decode:|block, all passages cached" "$res/bench-decode$decode.log" >> "$res/decode-summary-$decode.txt" 2>/dev/null
done
note "decode tokens/s, split kernel vs decode kernel:"
paste <(grep "decode:" "$res/bench-decode0.log" 2>/dev/null) <(grep "decode:" "$res/bench-decode1.log" 2>/dev/null | sed 's/^ *//') | tee -a "$summary"

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
