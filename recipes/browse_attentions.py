#!/usr/bin/env python3
"""One self-contained HTML page to explore the attention of one or more runs (opens offline).

Usage:
    python recipes/browse_attentions.py RUN_OR_CSV [RUN_OR_CSV ...] [--out report.html]
        [--max_clips 80] [--title TEXT]

RUN_OR_CSV: an attention CSV of save_attentions.py (RUN/saved_attentions/<tag>.csv, with its
_density.csv) or a run folder (all of RUN/saved_attentions/*.csv). Each CSV is one variant.
Also read, when they exist: RUN/specs/<id>.npz (save_specs.py: the spectrogram under the
attention), the clip's audio for the player (from the manifest the CSV was computed from, as its
.json records, e.g. an events-in-noise copy; else RUN/test.json) and RUN/self_attention/<id>.npz
(save_self_attention.py: Transformer runs).

The page (Bokeh, inlined: no server, works offline) has three tabs:
  Clips           a table (file, variant, label, prediction, score, right/wrong, mu and support
                  in s, mass in the event when the CSV has one), sortable by clicking a header,
                  filtered by class, right/wrong and variant; the selected row's clip below:
                  spectrogram with every variant's attention (each scaled to its maximum), the
                  supports shaded, the labelled event in gold, an audio player (8 kHz) and a
                  button that plays only the selected variant's support
  Self-attention  layer and head selectors over the map, seconds on both axes, word boundaries
  Summary         accuracy per variant; mean mu and support per class and variant
?clip=K&variant=V&sa_clip=C&layer=L&head=H&tab=T after the file name sets those controls on load.
Size: the first --max_clips clips, spectrograms and maps as 8-bit PNGs; over 50 MB: a warning.

Example:
    python recipes/browse_attentions.py results/esc10_compact_aug/discrete-sparsemax/test1_valid2/seed0 \\
        results/esc10_compact_cont/continuous-sparsemax/test1_valid2/seed0 --out fold1.html
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)


from audioattn_sb.inspection.cli import browse_attentions_main, run_cli  # noqa: E402

if __name__ == "__main__":
    run_cli(browse_attentions_main)
