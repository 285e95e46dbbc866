#!/usr/bin/env bash
# The CUDA paths, end to end, on a real GPU (CI and the development machine have none).
#
#   bash scripts/gpu_check.sh OUT_DIR
#
# 1. tests/test_cuda_real.py: the peak counters, NVML and a served tree's GPU memory against
#    allocations of known size;
# 2. `bench.py run --device cuda` on the demo ASR suite for the SALMONN-style baseline (bf16), its
#    NF4 recipe (bitsandbytes), the baseline with a batched quality pass, under nota2025, and the
#    tiny Qwen2-Audio; then the leaderboard of those runs;
# 3. the baseline served on the GPU (`bench.py serve --device cuda`) behind an `openai` candidate
#    with `server_pid` (the server's GPU memory from NVML), and a load test at concurrency 1 and 4;
#    then scripts/served_vs_inprocess.py for the baseline on the GPU.
# Every step is bounded and logged to OUT_DIR/<step>.log; a failed step does not stop the next.
# OUT_DIR/summary.txt lists each step's exit status and seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash scripts/gpu_check.sh OUT_DIR}
LIMIT=${GPU_CHECK_LIMIT:-5}
DEVICE=${GPU_CHECK_DEVICE:-cuda}  # cpu: a dry rehearsal of this script on a machine without a GPU
mkdir -p "$OUT"
RESULTS="$OUT/results"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

step() {  # step NAME TIMEOUT_S COMMAND...: bounded, logged, timed; never aborts the script
  local name=$1 limit=$2 t0 rc
  shift 2
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  printf '%-22s rc=%-3s %4ss\n' "$name" "$rc" "$(($(date +%s) - t0))" | tee -a "$SUMMARY"
  tail -n 4 "$OUT/$name.log"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'gpu', torch.cuda.get_device_name(0))"; } | tee "$OUT/machine.txt"

step pytest-cuda 180 python3 -m pytest -q -p no:cacheprovider -o addopts= tests/test_cuda_real.py

run() {  # run NAME ARGS...: one `bench.py run` on the GPU, demo ASR, LIMIT samples
  local name=$1
  shift
  step "$name" 240 python3 bench.py run --device "$DEVICE" --suite asr --limit "$LIMIT" --warmup 2 \
    --results "$RESULTS" "$@"
}
run baseline -c baseline
run qlora4bit -c qlora4bit
run baseline-batch4 -c baseline --batch-size 4 --efficiency-samples 2
run baseline-nota2025 -c baseline --protocol nota2025
run qwen2-audio-tiny -c qwen2-audio-tiny
step leaderboard 60 python3 bench.py leaderboard --results "$RESULTS"

# The baseline served on the GPU; the client reads the server's GPU memory through NVML.
PORT=${GPU_CHECK_PORT:-8765}
python3 bench.py serve -c baseline --device "$DEVICE" --port "$PORT" >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' EXIT
step serve-ready 180 python3 -c "
import sys, time, httpx
for _ in range(340):
    try:
        if httpx.get('http://127.0.0.1:$PORT/health', timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
sys.exit(1)"
cat >"$OUT/served.toml" <<EOF
name = "baseline-served"
family = "openai"
tasks = ["asr"]
[options]
base_url = "http://127.0.0.1:$PORT/v1"
model = "baseline"
server_pid = $SERVER
send_task = true
EOF
step served-run 240 python3 bench.py run -c "$OUT/served.toml" --suite asr --limit "$LIMIT" --warmup 2 \
  --results "$RESULTS"
step served-load 240 python3 bench.py load -c "$OUT/served.toml" --concurrency 1,4 --requests 8 \
  --results "$RESULTS"
kill "$SERVER" 2>/dev/null
wait "$SERVER" 2>/dev/null
trap - EXIT
step leaderboard-all 60 python3 bench.py leaderboard --results "$RESULTS"
# Served vs in process on this device: same transcripts, TTFT/TPOT within 10% plus the HTTP overhead.
step served-vs-inprocess 360 python3 scripts/served_vs_inprocess.py -c baseline --device "$DEVICE" \
  --repeat 3 --limit "$((LIMIT * 2))" --out "$OUT/svi"

# What the records say about the GPU: device, memory kinds and values, timings.
python3 - "$RESULTS" <<'EOF' | tee "$OUT/records.txt"
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("*/run.json")):
    r = json.loads(path.read_text())
    eff = r.get("efficiency") or {}
    env = r.get("environment") or {}
    mem = {k: v for k, v in eff.items() if "memory" in k or "nvml" in k or "gpu" in k}
    print(path.parent.name, r.get("status"), "device", env.get("device") or r.get("device"))
    print("   ", {k: eff.get(k) for k in ("latency_ms", "tokens_per_s", "weights_mb")},
          "ttft p50", (eff.get("ttft_ms") or {}).get("p50"), "tpot p50", (eff.get("tpot_ms") or {}).get("p50"))
    print("   ", mem)
    if r.get("load"):
        print("    load", json.dumps(r["load"])[:600])
    for name, suite in (r.get("suites") or {}).items():
        print("   ", name, suite.get("metrics"), "coverage", suite.get("coverage"))
EOF
cat "$SUMMARY"
