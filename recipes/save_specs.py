#!/usr/bin/env python3
"""Save the input features (spectrograms) of test clips of a trained run: .npz + .png each.

Usage (a trained run's folder; or the training command's hparams file and overrides plus
--output_folder=<trained run>):
    python recipes/save_specs.py RUN [--data_folder=DIR] [--device=cpu]
    python recipes/save_specs.py HPARAMS.yaml [training overrides] --output_folder=RUN
        [--attn_num_samples N] [--attn_split test] [--attn_specs_folder DIR | --spec_dname DIR]

RUN alone: its hyperparams.yaml rebuilds the model (nothing retyped); --data_folder reads another
copy of the corpus (e.g. make_noisy_folds.py's) through that copy's own cache.

Example:
    python recipes/save_specs.py hparams/urbansound8k_acrnn.yaml --data_folder=data/demo_us8k \\
        --cache_folder=data/demo_cache --output_folder=/tmp/x --attn_num_samples 5

Writes <RUN>/specs/<file_id>.npz and .png (another folder with --attn_specs_folder, or
--spec_dname as in the predecessor's commands; relative to RUN) for the first N clips (manifest
order; N = -1: all) of the split, on the best checkpoint (lowest valid error). Each .npz holds features [T, F] (the
model's input, after the normaliser), raw_features [T, F] (the log-mel Fbank), time_s [T]
(seconds), freqs_hz [F] (mel-band centres, Hz), hop_seconds, file_id, label, fold, duration (s),
source. Every attention domain works. For models whose compute_features is not a SpeechBrain
Fbank (raw-waveform models), a display-only log-mel Fbank of the waveform is saved instead
(source = display_fbank) and a warning is logged. All logic lives in audioattn_sb.inspection.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.inspection.cli import run_cli, save_specs_main  # noqa: E402

if __name__ == "__main__":
    run_cli(save_specs_main)
