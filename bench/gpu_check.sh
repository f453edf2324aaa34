#!/usr/bin/env bash
# GPU readiness check: run on a machine with NVIDIA GPU(s) what the CPU-only suite cannot check
# (attention on CUDA vs CPU, bf16/fp16 autocast, torchrun with nccl, Transformer throughput vs
# its FLOP bound, loader throughput against it). Prints one table and writes it to
# bench/_out/gpu_check.md. Takes about 2 minutes on one H200.
#
#   AUDIOATTN_GPU=1 bash scripts/install.sh      # once: the CUDA torch pip picks
#   bash bench/gpu_check.sh
#
# PYTHON=/path/to/python bash bench/gpu_check.sh uses another interpreter (one with torch with
# CUDA, SpeechBrain 1.1 and this project's requirements); by default .venv's, else python3.
# Exit status 1 when a check fails on a GPU.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$here/.venv/bin/python" ]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi
mkdir -p "$here/bench/_out"
cd "$here"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "nvidia-smi: not found"
"$PYTHON" bench/gpu_check.py --out "$here/bench/_out/gpu_check.md" "$@"
