#!/usr/bin/env bash
# Checks what a consumer of our packages gets, end to end, on this machine:
#
#   1. packs BlockAttention.Core, BlockAttention.Llama, BlockAttention.Extensions.AI,
#      BlockAttention.AspNetCore, BlockAttention.Redis and BlockAttention.Training (Release build of this tree) into a temporary local feed, under a
#      version unique to this run (0.1.0-ci.<time>.<pid>), and checks that each has a symbol package and a README whose links
#      work outside the repository;
#   2. creates a fresh `dotnet new console` app in a temporary folder, with a nuget.config of that
#      feed plus nuget.org, adds BlockAttention.Llama and libtorch-cpu-linux-x64, pins
#      Microsoft.Extensions.Caching.Memory and .Logging.Abstractions to 10.0.0 (an app pinned to
#      10.0.x must restore without NU1605), sets
#      RuntimeIdentifier linux-x64 and TreatWarningsAsErrors, and builds it (no warning allowed);
#   3. runs eng/consumer/Program.cs: loads tests/fixtures/tiny-llama3 with LlamaModel.Load,
#      compares a full-attention forward with the transformers logits, generates one block-attention
#      token, then runs torch.ones(3).sum(); then runs it again calling TorchSharp before any
#      BlockAttention type, with BLOCKATTENTION_NATIVE_CACHE pointing into the temporary folder;
#   4. checks that the patched copy of TorchSharp's bridge (if this host needs one) lies outside the
#      NuGet caches and the app folder, and that the NuGet cache's libLibTorchSharp.so and the app's
#      copy of it are byte for byte what NuGet delivered;
#   5. packs the blockattn CLI as a .NET tool (BlockAttention.Cli, RID-specific for linux-x64 with the
#      CPU libtorch), installs it from the same feed with `dotnet tool install --tool-path`, runs
#      `blockattn verify` on the fixture with it, and checks that the tool's copy of the bridge is
#      unmodified too.
#   6. builds and runs the program of README.md, extracted from it, from the repository root: it
#      must report the second run's reuse;
#   7. creates a fresh `dotnet new web` (ASP.NET Core) app that references BlockAttention.Extensions.AI,
#      registers everything with AddBlockAttention from its appsettings.json and answers
#      through IChatClient (eng/consumer-web/WebApp); then runs its xunit tests
#      (eng/consumer-web/WebApp.Tests, WebApplicationFactory): the second request over the same
#      passages reports CachedInputTokenCount > 0, and TTFT and store hits are read from the meter.
#
# The NuGet global packages folder is only read: the consumer restores into its own packages folder
# under the temporary folder, with the global one as a fallback folder (used in place, never written),
# so the freshly packed packages land in the temporary folder and vanish with it. The unique version
# keeps a stale BlockAttention package anywhere from being picked up instead of this build.
#
# Prints "verify-consumer: OK (<seconds> s)" last on success. Set BLOCKATTENTION_KEEP_CONSUMER=1 to
# keep the temporary folder for inspection.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixture="$repo/tests/fixtures/tiny-llama3"
started=$SECONDS

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# No MSBuild worker nodes left running after the script: a caller waiting on our output would
# otherwise wait for them too.
export MSBUILDDISABLENODEREUSE=1

work=$(mktemp -d "${TMPDIR:-/tmp}/blockattention-consumer.XXXXXX")
cleanup() {
  if [ "${BLOCKATTENTION_KEEP_CONSUMER:-0}" = 1 ]; then
    echo "verify-consumer: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

fail() {
  echo "verify-consumer: FAILED: $*" >&2
  exit 1
}

# Runs a build step with its output in a log file, shown only on failure. (Not a pipe: a build
# server started by the step could hold a pipe open long after the step ends.)
step() {
  local name=$1
  shift
  echo "verify-consumer: $name"
  if ! "$@" >"$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name"
  fi
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

version="0.1.0-ci.$(date -u +%Y%m%d%H%M%S).$$"
torchsharp_version=$(sed -nE 's/.*PackageVersion Include="TorchSharp" Version="([^"]+)".*/\1/p' "$repo/Directory.Packages.props")
libtorch_version=$(sed -nE 's/.*PackageVersion Include="libtorch-cpu-linux-x64" Version="([^"]+)".*/\1/p' "$repo/Directory.Packages.props")
[ -n "$torchsharp_version" ] && [ -n "$libtorch_version" ] || fail "could not read package versions from Directory.Packages.props"

global=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: //; s:/*$::')
[ -d "$global" ] || fail "no NuGet global packages folder at '$global'"

# 1. Pack. The build is incremental (a no-op after `dotnet build -c Release`); packing with
# --no-build then labels those very binaries with this run's version instead of rebuilding them,
# and keeps the per-run nuspec files out of the tree's obj folders.
feed="$work/feed"
# The CLI's build includes the libraries'.
step build dotnet build "$repo/src/BlockAttention.Cli/BlockAttention.Cli.csproj" -c Release
# BlockAttention.AspNetCore's build includes BlockAttention.Extensions.AI's.
step build-aspnetcore dotnet build "$repo/src/BlockAttention.AspNetCore/BlockAttention.AspNetCore.csproj" -c Release
for project in BlockAttention.Core BlockAttention.Llama BlockAttention.Extensions.AI BlockAttention.AspNetCore BlockAttention.Redis BlockAttention.Training BlockAttention.Cli; do
  step "pack-$project" dotnet pack "$repo/src/$project/$project.csproj" -c Release --no-build \
    -o "$feed" -p:Version="$version" -p:NuspecOutputPath="$work/nuspec/$project/"
done

# Every package comes with its symbols and a README whose links work outside this repository.
for project in BlockAttention.Core BlockAttention.Llama BlockAttention.Extensions.AI BlockAttention.AspNetCore BlockAttention.Redis BlockAttention.Training; do
  [ -f "$feed/$project.$version.snupkg" ] || fail "no symbol package $project.$version.snupkg"
  readme=$(unzip -p "$feed/$project.$version.nupkg" README.md) || fail "$project has no README.md"
  relative=$(echo "$readme" | grep -oE '\]\([^)#][^)]*\)' | grep -vE '^\]\(https?://' || true)
  [ -z "$relative" ] || fail "$project's README.md has links that only work inside the repository: $relative"
done

# Only if the TorchSharp package is already in the global folder can we say it stays unmodified;
# otherwise the consumer's restore downloads it into its own packages folder.
cached_bridge="$global/torchsharp/$torchsharp_version/runtimes/linux-x64/native/libLibTorchSharp.so"
cached_bridge_sha=
if [ -f "$cached_bridge" ]; then
  cached_bridge_sha=$(sha "$cached_bridge")
fi

# 2. A fresh console app.
app="$work/ConsumerApp"
step new dotnet new console -o "$app" -n ConsumerApp --no-restore
cat >"$app/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config>
    <add key="globalPackagesFolder" value="$work/packages" />
  </config>
  <fallbackPackageFolders>
    <clear />
    <add key="global" value="$global" />
  </fallbackPackageFolders>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="local">
      <package pattern="BlockAttention.*" />
    </packageSource>
    <packageSource key="nuget.org">
      <package pattern="*" />
    </packageSource>
  </packageSourceMapping>
</configuration>
EOF
step add-blockattention dotnet add "$app/ConsumerApp.csproj" package BlockAttention.Llama --version "$version" --no-restore
step add-libtorch dotnet add "$app/ConsumerApp.csproj" package libtorch-cpu-linux-x64 --version "$libtorch_version" --no-restore
# An app pinned to the first Microsoft.Extensions 10.0 release must restore without NU1605 (a
# downgrade, an error): our packages may not ask for anything newer.
for pinned in Microsoft.Extensions.Caching.Memory Microsoft.Extensions.Logging.Abstractions; do
  step "pin-$pinned" dotnet add "$app/ConsumerApp.csproj" package "$pinned" --version 10.0.0 --no-restore
done
sed -i 's:</TargetFramework>:&\n    <RuntimeIdentifier>linux-x64</RuntimeIdentifier>\n    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>:' "$app/ConsumerApp.csproj"
grep -q '<RuntimeIdentifier>linux-x64</RuntimeIdentifier>' "$app/ConsumerApp.csproj" || fail "could not set RuntimeIdentifier"
cp "$repo/eng/consumer/Program.cs" "$app/Program.cs"
step build-app dotnet build "$app/ConsumerApp.csproj" -c Release
if grep -qiE '(^|[^0-9])[1-9][0-9]* Warning\(s\)|: warning ' "$work/build-app.log"; then
  cat "$work/build-app.log" >&2
  fail "the consumer build has warnings"
fi
grep -q "BlockAttention.Runtime.Generated" "$app/obj/Release/net10.0/linux-x64/BlockAttention.LoaderRegistration.g.cs" ||
  fail "the package's build targets did not add the loader registration to the app"

# 3. Run it. Our own executable starts no background process, so capturing its output is safe.
bin="$app/bin/Release/net10.0/linux-x64"
echo "verify-consumer: run"
out=$(dotnet "$bin/ConsumerApp.dll" "$fixture" 2>&1) || { echo "$out" >&2; fail "the consumer app failed"; }
echo "$out" | sed 's/^/  /'
[ "$(echo "$out" | tail -n 1)" = consumer-ok ] || fail "the consumer app's checks failed"

echo "verify-consumer: run, TorchSharp first"
native_cache="$work/native-cache"
out_first=$(BLOCKATTENTION_NATIVE_CACHE="$native_cache" dotnet "$bin/ConsumerApp.dll" "$fixture" --torch-first 2>&1) ||
  { echo "$out_first" >&2; fail "the consumer app failed when calling TorchSharp first"; }
echo "$out_first" | sed 's/^/  /'
echo "$out_first" | grep -qx 'torch-first-sum=3' && [ "$(echo "$out_first" | tail -n 1)" = consumer-ok ] ||
  fail "torch.ones(3).sum() was not 3 when called first"

# 4. Where the patched copy went, and that nothing NuGet delivered changed.
value() { echo "$1" | sed -n "s/^$2=//p"; }
host_has=$(value "$out" 'host-has-GLIBCXX_3.4.32')
patched=$(value "$out" patched-copy)
patched_first=$(value "$out_first" patched-copy)
if [ "$host_has" = True ]; then
  [ "$patched" = none ] && [ "$patched_first" = none ] || fail "a patched copy was loaded on a host that has GLIBCXX_3.4.32"
  echo "verify-consumer: host libstdc++ has GLIBCXX_3.4.32: nothing patched"
else
  [ -f "$patched" ] || fail "no patched copy at '$patched'"
  for folder in "$global" "$work/packages" "$app"; do
    case "$patched/" in "$folder"/*) fail "the patched copy '$patched' lies inside '$folder'" ;; esac
  done
  case "$patched_first" in "$native_cache"/*) ;; *) fail "BLOCKATTENTION_NATIVE_CACHE was not honoured: '$patched_first'" ;; esac
  echo "verify-consumer: patched copy at $patched"
fi

app_bridge_sha=$(sha "$bin/libLibTorchSharp.so")
if [ -n "$cached_bridge_sha" ]; then
  [ "$(sha "$cached_bridge")" = "$cached_bridge_sha" ] || fail "the NuGet cache's libLibTorchSharp.so changed"
  [ "$app_bridge_sha" = "$cached_bridge_sha" ] || fail "the app's libLibTorchSharp.so differs from the NuGet cache's"
  echo "verify-consumer: NuGet cache and app copies of libLibTorchSharp.so unchanged ($cached_bridge_sha)"
fi

# 5. The CLI as a .NET tool. It is installed from a folder without a nuget.config of its own, so only
# the feed and the user's usual sources are consulted, as for any user.
tool_package="$feed/BlockAttention.Cli.linux-x64.$version.nupkg"
[ -f "$feed/BlockAttention.Cli.$version.nupkg" ] && [ -f "$tool_package" ] ||
  fail "packing BlockAttention.Cli did not give the tool package and its linux-x64 package: $(ls "$feed")"
echo "verify-consumer: tool package $(($(stat -c %s "$tool_package") >> 20)) MiB"
tools="$work/tools"
mkdir -p "$work/tool-install"
cd "$work/tool-install"
step tool-install dotnet tool install --tool-path "$tools" --add-source "$feed" BlockAttention.Cli --version "$version"
cd "$repo"
[ -x "$tools/blockattn" ] || fail "dotnet tool install gave no blockattn command in $tools"
echo "verify-consumer: blockattn verify (installed tool)"
out_tool=$(BLOCKATTENTION_NATIVE_CACHE="$work/native-cache-tool" "$tools/blockattn" verify --model "$fixture" --golden "$fixture" 2>&1) ||
  { echo "$out_tool" >&2; fail "blockattn verify failed"; }
echo "$out_tool" | tail -n 1 | sed 's/^/  /'
echo "$out_tool" | tail -n 1 | grep -q '^summary PASS: ' || fail "blockattn verify did not end with a passing summary"
tool_bridge=$(find "$tools/.store" -name libLibTorchSharp.so | head -n 1)
[ -f "$tool_bridge" ] || fail "no libLibTorchSharp.so in the installed tool"
[ "$(sha "$tool_bridge")" = "$app_bridge_sha" ] || fail "the installed tool's libLibTorchSharp.so differs from TorchSharp's"
if [ "$host_has" != True ]; then
  [ -n "$(find "$work/native-cache-tool" -name libLibTorchSharp.so 2>/dev/null)" ] ||
    fail "the installed tool did not put its patched copy of the bridge in BLOCKATTENTION_NATIVE_CACHE"
fi

for package in blockattention.core blockattention.llama blockattention.extensions.ai blockattention.cli blockattention.cli.linux-x64; do
  [ ! -e "$global/$package/$version" ] || fail "$package $version was written to the global packages folder"
done

# 6. The README's program, taken from README.md as it stands, built in the same app and run from the
# repository root with no argument (so on the bundled fixture, as the README says).
sed -n '/<!-- readme-snippet:start -->/,/<!-- readme-snippet:end -->/p' "$repo/README.md" | sed '1,2d;$d' | sed '$d' >"$app/Program.cs"
grep -q 'LlamaModel.Load' "$app/Program.cs" || fail "could not extract the program from README.md"
step build-readme dotnet build "$app/ConsumerApp.csproj" -c Release
echo "verify-consumer: run the README's program"
out_readme=$(cd "$repo" && dotnet "$bin/ConsumerApp.dll" 2>&1) || { echo "$out_readme" >&2; fail "the README's program failed"; }
echo "$out_readme" | grep '^second run: TTFT' | sed 's/^/  /'
echo "$out_readme" | grep -qE '^second run: TTFT .* 3 of 3 blocks reused, [1-9][0-9]* of [0-9]+ prompt tokens from the store' ||
  { echo "$out_readme" >&2; fail "the README's program did not report the second run's reuse"; }

# The console app's output holds a copy of libtorch (hundreds of MB); the web app and its tests
# make two more, so free this one first.
rm -rf "$app/bin" "$app/obj"

# 7. A fresh ASP.NET Core app with AddBlockAttention + IChatClient, and its tests.
package_version() { sed -nE "s/.*PackageVersion Include=\"$1\" Version=\"([^\"]+)\".*/\1/p" "$repo/Directory.Packages.props"; }
mvc_testing_version=10.0.15 # Microsoft.AspNetCore.Mvc.Testing for .NET 10
web="$work/WebApp"
web_tests="$work/WebApp.Tests"
step new-web dotnet new web -o "$web" -n WebApp --no-restore
cp "$app/nuget.config" "$web/nuget.config"
step add-extensions-ai dotnet add "$web/WebApp.csproj" package BlockAttention.Extensions.AI --version "$version" --no-restore
step add-web-libtorch dotnet add "$web/WebApp.csproj" package libtorch-cpu-linux-x64 --version "$libtorch_version" --no-restore
sed -i 's:</TargetFramework>:&\n    <RuntimeIdentifier>linux-x64</RuntimeIdentifier>\n    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>:' "$web/WebApp.csproj"
cp "$repo/eng/consumer-web/WebApp/Program.cs" "$web/Program.cs"
sed "s:@MODEL@:$fixture:" "$repo/eng/consumer-web/WebApp/appsettings.json" >"$web/appsettings.json"
mkdir -p "$web_tests"
cp "$app/nuget.config" "$web_tests/nuget.config"
cp "$repo/eng/consumer-web/WebApp.Tests/WebAppTests.cs" "$web_tests/"
sed -e "s:@MVC_TESTING@:$mvc_testing_version:" -e "s:@DIAGNOSTICS_TESTING@:$(package_version Microsoft.Extensions.Diagnostics.Testing):" \
  -e "s:@TEST_SDK@:$(package_version Microsoft.NET.Test.Sdk):" -e "s:@XUNIT@:$(package_version xunit):" \
  -e "s:@XUNIT_RUNNER@:$(package_version xunit.runner.visualstudio):" \
  "$repo/eng/consumer-web/WebApp.Tests/WebApp.Tests.csproj" >"$web_tests/WebApp.Tests.csproj"
step build-web dotnet build "$web_tests/WebApp.Tests.csproj" -c Release
if grep -qiE '(^|[^0-9])[1-9][0-9]* Warning\(s\)|: warning ' "$work/build-web.log"; then
  cat "$work/build-web.log" >&2
  fail "the web consumer build has warnings"
fi
echo "verify-consumer: web app tests"
step test-web dotnet test "$web_tests/WebApp.Tests.csproj" -c Release --no-build --logger "console;verbosity=detailed"
grep -E '^ *web-consumer: ' "$work/test-web.log" | sed 's/^ */  /' || true
[ "$(grep -cE '^ +Passed WebAppTests\.' "$work/test-web.log")" = 2 ] && grep -q '^Test Run Successful\.' "$work/test-web.log" ||
  { cat "$work/test-web.log" >&2; fail "the web consumer's tests did not all pass"; }

echo "verify-consumer: OK ($((SECONDS - started)) s)"
