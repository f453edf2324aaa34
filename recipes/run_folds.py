#!/usr/bin/env python3
"""Run cross-validation: every test fold × every attention variant, then the results table.

Usage:
    python recipes/run_folds.py HPARAMS.yaml --data_folder=DIR [--num_folds 10] [--folds 1 2 ...]
        [--variants discrete:softmax discrete:entmax1333 continuous:biweight discrete:entmax:1.7]
        [--results_root results] [--jobs 1] [--dry_run] [--teacher_experiment DIR [DIR ...]]
        [-- EXTRA TRAIN.PY OVERRIDES ...]

For test fold k of n the validation fold is k mod n + 1 (fold 10 validates on fold 1; with
--num_folds 5, fold 5 on fold 1) and the remaining n − 2 folds train. Each run is
`python recipes/train.py HPARAMS --data_folder=DIR --train_fold_nums=[...] --valid_fold_nums=[v]
--test_fold_nums=[k] --attn_domain D --attn_max_activation M [--attn_alpha A] EXTRA...`, writing to
the default output folder results/<experiment>/<attention>/test<k>_valid<v>/seed<s>; a run whose
results.json exists is skipped (so an interrupted loop resumes), a run that fails is reported and
the loop goes on. At the end, recipes/aggregate_folds.py's table is written to
<results_root>/<experiment>/folds_table.{csv,md,png}.

--teacher_experiment DIR (distillation, audioattn_sb/distill.py): each run gets --teacher= the run
of experiment folder DIR with the same test and validation folds (e.g. a compact ACRNN experiment
made with the same --num_folds); a fold without one stops before any run starts. Several DIRs
(e.g. the same teacher recipe trained with two seeds, as two experiments): each run distils from
the ensemble of their runs of its split (--teacher=[A, B], the mean of their probabilities).

Example (5-fold ESC-10, four discrete variants, 20 epochs):
    python recipes/run_folds.py hparams/urbansound8k_acrnn.yaml --data_folder=../shared/data/esc10_us8k \
        --num_folds 5 --variants discrete:softmax discrete:entmax1333 discrete:entmax15 discrete:sparsemax \
        -- --cache_folder=data/esc10_cache --experiment_name=esc10_acrnn
"""

import sys

from audioattn_sb.fold_runner import main

if __name__ == "__main__":
    sys.exit(main())
