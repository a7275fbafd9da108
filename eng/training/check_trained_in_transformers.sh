#!/usr/bin/env bash
# Runs check_trained_in_transformers.py on a folder written by eng/training/ExportTrainedCheckpoints
# (needs python with torch and transformers; no .NET, no network).
#   bash check_trained_in_transformers.sh FOLDER [--device cuda|cpu] [--json OUT.json]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
folder="${1:?usage: check_trained_in_transformers.sh FOLDER [--device cuda|cpu] [--json OUT.json]}"
shift
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${PYTHON:-python3}" "$here/check_trained_in_transformers.py" "$folder" "$@"
