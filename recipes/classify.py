#!/usr/bin/env python3
"""Classify audio files with a trained run; print the top-k classes and where it attended.

Usage:
    python recipes/classify.py FILE.wav [FILE ...] --model RUN [--top_k 5] [--plot out.png]
        [--device cpu] [--json]

Example:
    python recipes/classify.py data/demo_us8k/audio/fold1/11078-7-0-0.wav --model /tmp/x \\
        --plot /tmp/x/clip.png

RUN is a trained run's output folder (recipes/train.py --output_folder): its hyperparams.yaml
and the checkpoint with the lowest valid error are loaded (torch.load weights_only; nothing is
downloaded). Any sample rate, bit depth or channel count is read, downmixed and resampled like
dataset preparation. --plot writes the clip's features with the attention over it (with several
files, --plot is a folder). Logic: audioattn_sb.inference.
"""

from audioattn_sb.inference import main
from audioattn_sb.inspection.cli import run_cli

if __name__ == "__main__":
    run_cli(main)
