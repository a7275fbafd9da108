#!/usr/bin/env bash
# Fuzzes the safetensors header reader and the tokenizer.json reader with AFL++ and SharpFuzz.
#
#   eng/fuzz.sh [SECONDS]     total fuzzing time, split evenly between the two targets (default 120)
#
# Installs what it needs: afl++ from the distribution (apt-get), the SharpFuzz instrumenter as a
# dotnet tool under eng/fuzz/.tools. Builds eng/fuzz/BlockAttention.Fuzz, instruments the library
# assemblies, runs afl-fuzz on each target from the seed corpus in eng/fuzz/corpus/TARGET, then
# replays every crash and hang it found and prints the exception. Exit code 0: no crash; 1: crashes
# (they are under eng/fuzz/findings/TARGET/default/crashes; turn each into a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 2 ]; then
  echo "usage: eng/fuzz.sh [SECONDS] (at least 2)" >&2
  exit 2
fi

fuzz=eng/fuzz
tools=$fuzz/.tools
out=$fuzz/out
targets=(safetensors tokenizer)
per_target=$((seconds / ${#targets[@]}))
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

if ! command -v afl-fuzz >/dev/null; then
  echo "== installing afl++"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq afl++ >/dev/null
fi

if [ ! -x "$tools/sharpfuzz" ]; then
  echo "== installing SharpFuzz.CommandLine"
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null
fi

echo "== building and instrumenting"
rm -rf "$out"
dotnet publish "$fuzz/BlockAttention.Fuzz/BlockAttention.Fuzz.csproj" -c Release -o "$out" -v quiet -nologo
# Instrumented code needs afl-fuzz's shared memory, so crashes are replayed with an uninstrumented copy.
rm -rf "$out-replay"
cp -r "$out" "$out-replay"
# Coverage is collected from the library's own code; the framework and packages stay uninstrumented.
for assembly in BlockAttention.Core.dll BlockAttention.Llama.dll; do
  "$tools/sharpfuzz" "$out/$assembly"
done

# A container usually cannot set the core pattern or the CPU governor; neither matters for finding crashes.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1

status=0
for target in "${targets[@]}"; do
  findings="$fuzz/findings/$target"
  rm -rf "$findings"
  mkdir -p "$fuzz/findings"
  echo "== fuzzing $target for ${per_target}s"
  # -t: a .NET input takes milliseconds, but the first runs include JIT compilation. -m none: the CLR reserves far more address space than it uses.
  afl-fuzz -i "$fuzz/corpus/$target" -o "$findings" -V "$per_target" -t 5000 -m none -- "$out/BlockAttention.Fuzz" "$target" \
    > "$findings.log" 2>&1 || { echo "afl-fuzz failed; its log:"; tail -30 "$findings.log"; exit 1; }
  stats="$findings/default/fuzzer_stats"
  execs=$(awk -F': *' '$1 ~ /execs_done/ {print $2}' "$stats")
  paths=$(awk -F': *' '$1 ~ /corpus_count/ {print $2}' "$stats")
  mapfile -t crashes < <(find "$findings/default/crashes" -type f -name 'id:*' 2>/dev/null)
  mapfile -t hangs < <(find "$findings/default/hangs" -type f -name 'id:*' 2>/dev/null)
  echo "$target: $execs executions, $paths inputs in the corpus, ${#crashes[@]} crashes, ${#hangs[@]} hangs"
  if [ "${#crashes[@]}" -gt 0 ] || [ "${#hangs[@]}" -gt 0 ]; then
    status=1
    "$out-replay/BlockAttention.Fuzz" "$target" --replay "${crashes[@]}" "${hangs[@]}" || true
  fi
done

exit "$status"
