#!/usr/bin/env bash
# Install (scripts/install.sh) and run the whole test suite, slow real-data tests included.
#   bash scripts/test.sh                 # everything (what CI runs)
#   bash scripts/test.sh -m "not slow"   # skip the slow training/real-data tests
# Extra arguments go to pytest. Fails when a test fails or when no test ran (pytest exit 5).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}
export VENV
bash "$here/scripts/install.sh" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || exit 1
cd "$here"
# the optional [hf] extra (transformers), so that the pretrained-encoder export tests run too
"$VENV/bin/python" -m pip install -q "transformers>=4.40,<6" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || exit 1
# one intra-op thread per process: the suite runs many small models and subprocesses; with one
# thread per core they spin against each other (10x slower on a loaded 2-core machine)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$VENV/bin/python" -m pytest --doctest-modules audioattn_sb tests -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
