#!/usr/bin/env python3
"""Figures from save_attentions.py CSVs (PNG, matplotlib Agg).

Usage:
    python recipes/plot_attentions.py RUN/saved_attentions/NAME.csv [--specs RUN/specs]
        [--compare OTHER.csv ...] [--out DIR] [--clips FILE_ID ...] [--max_clips 8]

Example:
    python recipes/plot_attentions.py /tmp/b/saved_attentions/biweight.csv \\
        --compare /tmp/s/saved_attentions/sparsemax.csv

Writes into DIR (default <csv folder>/plots/<csv name>/):
  attention_<file_id>.png  the clip's spectrogram (from --specs, default <run>/specs when it
                           exists) with the attention over it: continuous density per second
                           (support shaded for sparse families, mu dashed) or discrete weights as
                           stems (1000 x 400 px)
  compare_<file_id>.png    with --compare: the same clip under every variant (1000 x (60+240n))
  distributions.png        per-class box plots of mu and of the support width, one colour per
                           variant
"""

from audioattn_sb.inspection.cli import plot_attentions_main, run_cli

if __name__ == "__main__":
    run_cli(plot_attentions_main)
