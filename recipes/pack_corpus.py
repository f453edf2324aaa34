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


def main(argv=None):
    import argparse
    import os

    from audioattn_sb.data.packed import ensure_packed
    from audioattn_sb.utils import run_cli

    def run(args_list):
        p = argparse.ArgumentParser(description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("runs", nargs="+")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        a = p.parse_args(args_list)
        for run_folder in a.runs:
            manifests = {s: os.path.join(run_folder, f"{s}.json")
                         for s in ("train", "valid", "test")}
            manifests = {s: m for s, m in manifests.items() if os.path.isfile(m)}
            if not manifests:
                raise FileNotFoundError(f"{run_folder}: no train/valid/test.json manifests; "
                                        "give the output folder of a prepared run")
            audio = ensure_packed(manifests, progress=not a.quiet)
            print(f"{run_folder}: {len(audio)} clips, {audio.n_samples} samples "
                  f"({audio.n_samples * 4 / 1e9:.2f} GB) in {audio.folder}")

    run_cli(run, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
