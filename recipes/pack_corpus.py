#!/usr/bin/env python3
"""Pack the audio of prepared runs into one memory-mapped file (the format of --packed_audio=True).

Usage:
    python recipes/pack_corpus.py RUN [RUN ...] [--quiet]

RUN: a run's output folder (or any folder) holding the train.json / valid.json / test.json
manifests that recipes/train.py's preparation wrote. Every distinct cached WAV they name is
written once into <cache>/packed/<key>/audio.f32 (raw float32) with index.json (written last),
where <cache> is the folder holding those WAVs and <key> a hash of their paths, sizes and
modification times; an existing complete pack of the same files is reused. Runs with
--packed_audio=True find the pack and read the samples from it instead of opening one WAV file
per item (audioattn_sb/data/packed.py). Prints one line per RUN: clips, samples, size, folder.

Example:
    python recipes/pack_corpus.py results/urbansound8k_acrnn/discrete-softmax/test1_valid2/seed0
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)


from audioattn_sb.data.packed import pack_corpus_main  # noqa: E402
from audioattn_sb.utils import run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(pack_corpus_main)
