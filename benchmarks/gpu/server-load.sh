#!/bin/bash
# Many streaming clients against the server sample on a CUDA machine, on a random-weight model.
#
# Here (with the .NET SDK), once:
#   bash ../shared/device/pack.sh samples/BlockAttention.Server/BlockAttention.Server.csproj .device-server
# On the CUDA machine, from the repository root (Python with a CUDA PyTorch and transformers):
#   OUT=/some/dir bash benchmarks/gpu/server-load.sh
# Settings (environment): SHAPE=1b|8b (Llama-3.2-1B or Llama-3.1-8B shape, default 1b), LEVELS (default
# 1,64), REQUESTS (64), MAX_TOKENS (64), MAX_BATCH (64: the session's MaxBatchSize), PORT (5080).
# Writes $OUT/server-load.json (per level: tok/s, TTFT, TPOT, mean batch size, answers equal to
# the one-at-a-time level) and $OUT/server.log.
set -euo pipefail
OUT=${OUT:-/tmp/server-load}
SHAPE=${SHAPE:-1b}
LEVELS=${LEVELS:-1,64}
REQUESTS=${REQUESTS:-64}
MAX_TOKENS=${MAX_TOKENS:-64}
MAX_BATCH=${MAX_BATCH:-64}
PORT=${PORT:-5080}
PACKED=${PACKED:-.device-server}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model=/tmp/blockattention-random-$SHAPE
mkdir -p "$OUT"
[ -x "$PACKED/run.sh" ] || { echo "no $PACKED/run.sh: pack the server sample first (see the top of this script)" >&2; exit 2; }

if [ ! -f "$model/config.json" ]; then
  echo "writing a random-weight $SHAPE checkpoint to $model"
  SHAPE=$SHAPE MODEL=$model FIXTURE="$root/tests/fixtures/tiny-llama3" python3 - <<'PY'
import json, os, shutil, torch
from transformers import LlamaConfig, LlamaForCausalLM
fixture, out, shape = os.environ["FIXTURE"], os.environ["MODEL"], os.environ["SHAPE"]
config = json.load(open(os.path.join(fixture, "config.json")))
dims = {"1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True),
        "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=False)}[shape]
config.update(dims, initializer_range=0.02, torch_dtype="bfloat16")
config.get("rope_scaling", {}).update(factor=32.0 if shape == "1b" else 8.0)
with torch.device("cuda"):
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "transformers_version"})).to(torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(fixture, name), out)
print("saved", out)
PY
fi

export BlockAttention__Model=$model BlockAttention__Device=cuda BlockAttention__DType=bfloat16 BlockAttention__Store=memory
export BlockAttention__StoreMaxBytes=$((8 << 30)) BlockAttention__MaxBatchSize=$MAX_BATCH BlockAttention__MaxQueuedRequests=1024
export BlockAttentionServer__MaxNewTokens=$MAX_TOKENS Urls=http://127.0.0.1:$PORT Logging__LogLevel__Default=Warning
bash "$PACKED/run.sh" > "$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "the server exited; its log:" >&2; tail -50 "$OUT/server.log" >&2; exit 1; }
  sleep 1
done
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader || true
python3 "$here/server_load.py" --url "http://127.0.0.1:$PORT" --levels "$LEVELS" --requests "$REQUESTS" --max-tokens "$MAX_TOKENS" --out "$OUT/server-load.json"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader || true
