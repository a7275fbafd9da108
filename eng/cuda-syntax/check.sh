#!/bin/bash
# C++ syntax and type check of our NVRTC kernel sources without a GPU or the CUDA toolkit: clang
# (14 or newer) compiles every ELEM_ID x HEAD_DIM x ROWS variant to PTX for sm_80, with prelude.h
# standing in for the CUDA headers (builtin vars, vector types, intrinsics). It does not check PTX
# inline assembly, register use or NVRTC-specific behaviour: the GPU run still decides.
#   usage: bash eng/cuda-syntax/check.sh src/BlockAttention.Core/Attention/Cuda/DecodeAttention.cu
set -u
file=$(realpath "${1:?usage: check.sh file.cu}")
here=$(cd "$(dirname "$0")" && pwd)
clang=${CLANG:-$(command -v clang++ || ls /usr/lib/llvm-*/bin/clang++ 2>/dev/null | tail -1)}
[ -x "$clang" ] || { echo "no clang++ found (set CLANG)"; exit 2; }
work=$(mktemp -d /tmp/cuda-syntax-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
for e in 0 1 2; do for d in 8 16 64 128; do for r in 16 64; do
  { echo "#include \"$here/prelude.h\""; echo "#define ELEM_ID $e"; echo "#define HEAD_DIM $d"; echo "#define ROWS $r"; cat "$file"; } > "$work/t.cu"
  out=$("$clang" -x cuda --cuda-device-only -nocudainc -nocudalib --cuda-gpu-arch=sm_80 -Xclang -target-feature -Xclang +ptx70 \
        -std=c++17 -O2 -S -o "$work/t.ptx" "$work/t.cu" 2>&1)
  rc=$?
  if [ $rc != 0 ] || echo "$out" | grep -q warning; then
    echo "ELEM_ID $e HEAD_DIM $d ROWS $r: rc=$rc"; echo "$out" | grep -E "error|warning" | head -5; fail=1
  fi
done; done; done
[ $fail = 0 ] && echo "all variants compile: $(basename "$file")"
exit $fail
