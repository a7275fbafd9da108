#!/usr/bin/env bash
# Regenerates the public API lists of every package (src/*/PublicAPI.Unshipped.txt) from the code,
# with the PublicApiAnalyzers' own code fix: after a deliberate public API change, run
#
#   eng/update-public-api.sh            # all packages
#   eng/update-public-api.sh BlockAttention.Core
#
# and commit the changed PublicAPI.Unshipped.txt files (review them: each line is a public symbol).
# Symbols that were removed are dropped from Unshipped (RS0017's fix); removing a Shipped symbol is a
# breaking change and stays for a person to decide. Nothing has been released yet, so Shipped is empty.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 MSBUILDDISABLENODEREUSE=1

projects=("$@")
if [ ${#projects[@]} -eq 0 ]; then
  for csproj in "$repo"/src/*/*.csproj; do
    dir=$(dirname "$csproj")
    [ -f "$dir/PublicAPI.Shipped.txt" ] && projects+=("$(basename "$dir")")
  done
fi

for project in "${projects[@]}"; do
  dir="$repo/src/$project"
  [ -f "$dir/PublicAPI.Shipped.txt" ] || { echo "update-public-api: $project has no PublicAPI.Shipped.txt" >&2; exit 1; }
  # Start from an empty Unshipped list so that removed symbols go too; the fix adds back every public symbol.
  printf '#nullable enable\n' >"$dir/PublicAPI.Unshipped.txt"
  echo "update-public-api: $project"
  dotnet restore "$dir/$project.csproj" -v quiet -nologo
  dotnet format analyzers "$dir/$project.csproj" --diagnostics RS0016 RS0037 --severity info --no-restore -v quiet
  # The fix appends in discovery order; sort for stable diffs (the header first).
  { head -n 1 "$dir/PublicAPI.Unshipped.txt"; tail -n +2 "$dir/PublicAPI.Unshipped.txt" | grep -v '^$' | LC_ALL=C sort -u; } >"$dir/PublicAPI.Unshipped.tmp"
  mv "$dir/PublicAPI.Unshipped.tmp" "$dir/PublicAPI.Unshipped.txt"
done

# The build fails if a list is still incomplete.
for project in "${projects[@]}"; do
  dotnet build "$repo/src/$project/$project.csproj" -c Release -v quiet -nologo
done
echo "update-public-api: done"
