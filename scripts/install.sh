#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install audioattn-sb with a CPU-only torch.
#
#   bash scripts/install.sh            # venv in .venv
#   VENV=/path/to/venv bash scripts/install.sh
#   AUDIOATTN_GPU=1 bash scripts/install.sh   # keep whatever CUDA torch/torchaudio pip picks (GPU users)
#   AUDIOATTN_TORCH_INDEX=URL bash scripts/install.sh   # take torch from this index
#
# Which torch (CPU): AUDIOATTN_TORCH_INDEX when set; else the CPU build pip already resolves
# torch==2.13.0 to (a local find-links folder, a mirror: its version ends in +cpu); else PyTorch's
# CPU wheel index (https://download.pytorch.org/whl/cpu) when reachable; else pip's default,
# with a warning (on x86_64 Linux that is a CUDA build of several GB).
#
# Why the torchaudio dance: SpeechBrain 1.1 imports torchaudio, and PyPI's torchaudio 2.11 x86_64
# wheel links CUDA libraries in three C++ extension files. Beside a CPU torch those files fail to
# load; without them torchaudio imports with its extension off (transforms and compliance.kaldi
# work; we never call torchaudio.load: audio is read with soundfile).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
PY=${PYTHON:-python3}
TORCH="torch==2.13.0"
CPU_INDEX=https://download.pytorch.org/whl/cpu
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: '$PY -m venv' failed: Python's venv module is missing (Debian/Ubuntu:" \
      "apt-get install python3-venv; or set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
fi
pip="$VENV/bin/python -m pip"

# the pip options that install a CPU build of torch (see the header)
torch_source() {
  if [ -n "${AUDIOATTN_TORCH_INDEX:-}" ]; then
    echo "--index-url $AUDIOATTN_TORCH_INDEX"; return
  fi
  local resolved
  resolved=$($pip install --dry-run --no-deps --quiet --report - "$TORCH" 2>/dev/null \
    | "$VENV/bin/python" -c "import json, sys; r = json.load(sys.stdin)['install']; print(r[0]['metadata']['version'] if r else '')" \
    2>/dev/null || true)
  if [[ "$resolved" == *+cpu ]] || "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__ == '2.13.0+cpu' else 1)" 2>/dev/null; then
    echo ""; return
  fi
  if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('$CPU_INDEX/torch/', timeout=10)" 2>/dev/null; then
    echo "--index-url $CPU_INDEX"; return
  fi
  echo "warning: no CPU build of $TORCH found (resolved: ${resolved:-nothing}) and $CPU_INDEX is" \
    "unreachable: installing pip's default (on x86_64 Linux a CUDA build of several GB); set" \
    "AUDIOATTN_TORCH_INDEX to a CPU wheel index to avoid it" >&2
  echo ""
}

if [ "${AUDIOATTN_GPU:-0}" = "1" ]; then
  $pip install -q torch torchaudio
else
  # shellcheck disable=SC2046
  $pip install -q $(torch_source) "$TORCH"
  $pip install -q --no-deps "torchaudio==2.11.0"
  # drop the CUDA-linked extension files so that `import torchaudio` works beside CPU torch
  rm -f "$VENV"/lib/python3*/site-packages/torchaudio/lib/*.abi3.so
fi
$pip install -q -r "$here/requirements.txt"
$pip install -q --no-deps --no-build-isolation -e "$here" 2>/dev/null || $pip install -q --no-deps -e "$here"
"$VENV/bin/python" -c "import torch, torchaudio, speechbrain, entmax, audioattn_sb; print('audioattn-sb ready: torch', torch.__version__, '| speechbrain', speechbrain.__version__)"
