#!/usr/bin/env python3
"""Export the attention of every test clip of a trained run: summary CSV + density CSV.

Usage (a trained run's folder; or the training command's hparams file and overrides plus
--output_folder=<trained run>):
    python recipes/save_attentions.py RUN [--data_folder=DIR] [--device=cpu]
    python recipes/save_attentions.py HPARAMS.yaml [training overrides] --output_folder=RUN
        [--attn_fname saved_attentions/NAME.csv] [--attn_num_samples N] [--attn_density_points K]
        [--attn_split test] [--events_csv EVENTS.csv]

RUN alone: its hyperparams.yaml rebuilds the model (nothing retyped); --data_folder reads another
copy of the corpus (e.g. make_noisy_folds.py's) through that copy's own cache.

Example:
    python recipes/save_attentions.py hparams/urbansound8k_acrnn.yaml \\
        --data_folder=data/demo_us8k --cache_folder=data/demo_cache --output_folder=/tmp/x \\
        --attn_domain continuous --attn_max_activation biweight --attn_fname saved_attentions/b.csv

Evaluates the best checkpoint (lowest valid error) on the split (its first N clips in manifest
order with --attn_num_samples N; -1, the default, = all) and writes (a relative
--attn_fname resolves under RUN; default saved_attentions/<attention tag>.csv):
  NAME.csv          one row per clip: file_id, label, pred, duration (s), fold (from the data),
                    mu, var, sigma_sq, supp, alpha (R's columns), attn_domain, max_activation,
                    alpha_value, label_id, pred_id, score, correct, n_frames, mu_seconds,
                    supp_seconds, support_start_s, support_end_s, mass_in_clip.
                    mu/var/sigma_sq/supp in normalised time [0, 1] of the clip; supp = support
                    width (continuous; inf for the Gaussian) or the fraction of frames with
                    nonzero weight (discrete, where mu/var are the weights' moments and
                    sigma_sq is empty); alpha = ';'-joined discrete frame weights.
  NAME_density.csv  file_id, t_seconds, density, kind: the continuous pdf per second at K points
                    (integrates to ~1 with the trapezoid rule), or the discrete frame weights
                    (kind frame_weight, sum 1), at the frame centres.
                    With --events_csv (slice_file_name,onset_s,offset_s per clip, e.g. the
                    metadata/events.csv of recipes/make_noisy_folds.py; test the run on that
                    noisy copy with --data_folder=<noisy copy>): event_onset_s, event_offset_s,
                    mass_in_event (the attention's mass on the event), event_coverage (fraction
                    of the event inside the support / nonzero frames), mu_in_event (0/1),
                    uniform_mass (event length / clip length: uniform attention's mass).
  NAME.json         what was exported (run, checkpoint, attention, class names, units, and the
                    mean localisation figures).
All files are written atomically. Units and details: audioattn_sb/inspection/export.py.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.inspection.cli import run_cli, save_attentions_main  # noqa: E402

if __name__ == "__main__":
    run_cli(save_attentions_main)
