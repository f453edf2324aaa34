#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install audioattn-sb with a CPU-only torch.
#
#   bash scripts/install.sh            # venv in .venv
#   VENV=/path/to/venv bash scripts/install.sh
#   AUDIOATTN_GPU=1 bash scripts/install.sh   # keep whatever CUDA torch/torchaudio pip picks (GPU users)
#
# Why the torchaudio dance: SpeechBrain 1.1 imports torchaudio, and PyPI's torchaudio 2.11 x86_64
# wheel links CUDA libraries in three C++ extension files. Beside a CPU torch those files fail to
# load; without them torchaudio imports with its extension off (transforms and compliance.kaldi
# work; we never call torchaudio.load: audio is read with soundfile).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip="$VENV/bin/python -m pip"
if [ "${AUDIOATTN_GPU:-0}" = "1" ]; then
  $pip install -q torch torchaudio
else
  $pip install -q "torch==2.13.0"
  $pip install -q --no-deps "torchaudio==2.11.0"
  # drop the CUDA-linked extension files so that `import torchaudio` works beside CPU torch
  rm -f "$VENV"/lib/python3*/site-packages/torchaudio/lib/*.abi3.so
fi
$pip install -q -r "$here/requirements.txt"
$pip install -q --no-deps --no-build-isolation -e "$here" 2>/dev/null || $pip install -q --no-deps -e "$here"
"$VENV/bin/python" -c "import torch, torchaudio, speechbrain, entmax, audioattn_sb; print('audioattn-sb ready: torch', torch.__version__, '| speechbrain', speechbrain.__version__)"
