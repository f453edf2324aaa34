#!/usr/bin/env python3
"""Grid plots (layers x heads) of save_self_attention.py exports (PNG, matplotlib Agg).

Usage:
    python recipes/plot_self_attention.py RUN/self_attention/ID.npz [more .npz or folders]
        [--textgrid FILE.TextGrid] [--word_tier NAME] [--phone_tier NAME]
        [--layers 0 1 ...] [--heads 0 3 ...] [--time_range START END] [--out DIR]

Example:
    python recipes/plot_self_attention.py /tmp/tr/self_attention/arctic_a0001.npz

One PNG per export, <DIR>/<name>.png (default next to the .npz): one panel per (layer, head),
query time (s) down, key time (s) across, the weights in colour. Word (solid) and phone (dotted)
boundaries are drawn on both axes, with the words on the outer axes, from the intervals saved by
save_self_attention.py --textgrid or from --textgrid here. Size: (100 + 260 x heads) x
(80 + 260 x layers) pixels.
"""

from audioattn_sb.inspection.cli import plot_self_attention_main, run_cli

if __name__ == "__main__":
    run_cli(plot_self_attention_main)
