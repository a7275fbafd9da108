#!/bin/bash
# One GPU call (at most 540 s of steps, most important first): the kernel check of every variant
# (incl. the decode kernel's deep variant and batched decode), verify on both fixture models with
# batching on CUDA and the decode kernel, many requests at once with batching on CUDA and the
# exactness check, then the length bench with the split kernel, the decode kernel and its deep variant.
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

# 1. Kernel check: fma, mma, decode and deep on random shapes; batched decode (vs reference and vs
#    solo, bitwise; odd cases on the deep variant); timings incl. a sweep of decode configurations.
step kernel-check 170 bash "$dev/run-kc.sh" --cases 150 --batch-cases 30 --out "$res/kernel-check.md"
grep -E "kernel runs|batch cases|FAIL|DIFFERS" "$res/kernel-check.md" | head -12 >> "$summary"
{ echo "decode kernel timings (32768 and 4096 cached tokens, one layer):";
  grep -E "^\| (decode|deep)[^|]*\| (4096|32768) \|" "$res/kernel-check.md" | head -24;
  echo "batched decode (4K shared):"; grep -E "^\| (decode|deep) t[0-9]+ \| [0-9]+ \|" "$res/kernel-check.md" | head -8; } >> "$summary"

# 2. verify on both fixtures, float32 and bfloat16, session path with batching on CUDA and the decode kernel.
for model in tiny-llama3 tiny-llama2; do
  for dtype in float32 bfloat16; do
    step "verify-$model-$dtype-batch" 60 env BLOCKATTENTION_CUDA_BATCH=1 BLOCKATTENTION_CUDA_DECODE=1 \
      bash "$dev/run.sh" verify --model tests/fixtures/$model --golden tests/fixtures/$model --device cuda --dtype $dtype --session
  done
done

# 3. Many requests at once with batching on CUDA (4K prompts, 128 new tokens), each request also
#    run alone on the batching session: tokens must be identical (greedy and seeded sampling).
#    Highest level first, so that a timeout loses the least important levels.
step concurrency-batch 260 env BLOCKATTENTION_CUDA_BATCH=1 BLOCKATTENTION_CUDA_DECODE=1 \
  bash "$dev/run.sh" bench --preset llama-3.1-8b --device cuda --concurrency 64,16,4,1 --requests 64,16,4,2 \
    --max-batch 64 --lengths 4096 --decode-tokens 128 --repeats 1 --check-exact --out "$res/concurrency-batch"
grep -E "c= *[0-9]+|exact|PASS|FAIL" "$res/concurrency-batch.log" 2>/dev/null | head -20 >> "$summary"

# 4. The length bench: split kernel, decode kernel, deep variant (tile 32), same call, decode tok/s side by side.
bench() { # bench NAME ENV...
  local name=$1; shift
  step "bench-$name" 100 env "$@" \
    bash "$dev/run.sh" bench --preset llama-3.1-8b --device cuda --lengths 2048,4096,8192,16384,32768 \
      --repeats 1 --decode-tokens 64 --out "$res/bench-$name"
}
bench deep BLOCKATTENTION_CUDA_DECODE=1 BLOCKATTENTION_CUDA_DECODE_DEEP=1 BLOCKATTENTION_CUDA_DECODE_TILE=32
bench decode BLOCKATTENTION_CUDA_DECODE=1
bench split BLOCKATTENTION_CUDA_DECODE=0
note "decode tokens/s: split kernel | decode kernel | deep variant (tile 32):"
paste <(grep "decode:" "$res/bench-split.log" 2>/dev/null) <(grep "decode:" "$res/bench-decode.log" 2>/dev/null | sed 's/^ *//') \
  <(grep "decode:" "$res/bench-deep.log" 2>/dev/null | sed 's/^ *//') | tee -a "$summary"

# 5. If time is left: verify with the deep variant.
for model in tiny-llama3 tiny-llama2; do
  step "verify-$model-bfloat16-deep" 30 env BLOCKATTENTION_CUDA_BATCH=1 BLOCKATTENTION_CUDA_DECODE=1 BLOCKATTENTION_CUDA_DECODE_DEEP=1 BLOCKATTENTION_CUDA_DECODE_TILE=32 \
    bash "$dev/run.sh" verify --model tests/fixtures/$model --golden tests/fixtures/$model --device cuda --dtype bfloat16 --session
done

note "total $(( $(date +%s) - start ))s"
tar czf "$OUT/kernels-results.tar.gz" -C "$OUT" kernels && rm -rf "$res"
ls -la "$OUT"
