#!/bin/bash
# Packs what benchmarks/gpu/kernels-run.sh needs on a CUDA machine without .NET into ONE folder
# (default .device): the CLI (../shared/device/pack.sh: app/, the .NET runtime, run.sh) and the
# kernel check published beside it into kc/ (sharing the runtime), started by run-kc.sh.
#   usage (repository root): bash benchmarks/gpu/kernels-pack.sh [.device]
set -euo pipefail
out=${1:-.device}
shared=${SHARED_DEVICE:-../shared/device}
[ -f "$shared/pack.sh" ] || shared=/work/shared/device
bash "$shared/pack.sh" src/BlockAttention.Cli/BlockAttention.Cli.csproj "$out"
rm -rf "$out/kc"
dotnet publish benchmarks/BlockAttention.KernelCheck/BlockAttention.KernelCheck.csproj -c Release -r linux-x64 --self-contained false -p:PublishSingleFile=false -o "$out/kc" >/dev/null
find "$out/kc" -maxdepth 4 \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' \
  -o -name 'libshm*.so*' -o -name 'libbackend_with_compiler.so' -o -name 'libjitbackend_test.so' \
  -o -name 'libnnapi_backend.so' -o -name 'libaoti_custom_ops.so' \) -delete
# The carry limit (64 MiB with the repository) leaves ~36 MiB for this folder: drop from kc/ every
# file that app/ holds identically (the shared assemblies); run-kc.sh copies them back first.
if [ -d "$out/app" ]; then
  (cd "$out/kc" && find . -type f | while read -r f; do
    if [ -f "../app/$f" ] && cmp -s "$f" "../app/$f"; then rm -f "$f"; fi
  done)
fi
cat > "$out/run-kc.sh" <<'RUN'
#!/bin/bash
# Runs the packed kernel check (kc/) with the runtime that run.sh unpacks; arguments pass through.
set -e
here=$(cd "$(dirname "$0")" && pwd)
# kc/ was packed without the files app/ holds identically: copy them in (never over kc's own).
[ -d "$here/app" ] && cp -rn "$here/app/." "$here/kc/"
[ -x /tmp/dotnet-rt/dotnet ] || { mkdir -p /tmp/dotnet-rt && tar xJf "$here/dotnet-rt.tar.xz" -C /tmp/dotnet-rt; }
torchlib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torchlib:$here/kc:${LD_LIBRARY_PATH:-}
export DOTNET_ROOT=/tmp/dotnet-rt DOTNET_CLI_TELEMETRY_OPTOUT=1
exec /tmp/dotnet-rt/dotnet "$here/kc/BlockAttention.KernelCheck.dll" "$@"
RUN
chmod +x "$out/run-kc.sh"
git rev-parse --short HEAD > "$out/commit.txt"
du -sh "$out"
echo "packed the CLI and the kernel check into $out (commit $(cat "$out/commit.txt")); carry $out and run: bash benchmarks/gpu/kernels-run.sh"
