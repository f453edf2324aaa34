#!/usr/bin/env python3
"""Train and test one attention configuration (SpeechBrain recipe).

Usage:
    python recipes/train.py HPARAMS.yaml [--data_folder=DIR] [--output_folder=DIR]
        [--train_fold_nums=[3, 4, 5, 6, 7, 8, 9, 10] --valid_fold_nums=[2] --test_fold_nums=[1]]
        [--attn_domain {discrete,continuous,mean}] [--attn_max_activation NAME] [--attn_alpha A]
        [--number_of_epochs=N] [any other --key=value override of the yaml]
        [SpeechBrain run options: --device cpu|cuda:0, --precision fp32|bf16|fp16, --debug, ...]

Examples:
    # the seed ACRNN on the embedded demo data (make it first: python recipes/make_demo_data.py)
    python recipes/train.py hparams/urbansound8k_acrnn.yaml --data_folder=data/demo_us8k \\
        --attn_domain discrete --attn_max_activation sparsemax --number_of_epochs=2

Writes into the output folder (default results/<experiment>/<attention>/test<k>_valid<j>/seed<s>):
train.json/valid.json/test.json manifests, hyperparams.yaml, train_log.txt, log.txt, save/
(checkpoints; a rerun of the same command resumes from them) and results.json (test accuracy,
error, loss, per-class accuracy, confusion matrix, folds, overrides). The test split is evaluated
on the checkpoint with the lowest valid error. Valid and test folds must differ (see
--allow_valid_test_overlap=True in the yaml). All logic lives in audioattn_sb.recipe.
"""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.recipe import main  # noqa: E402

if __name__ == "__main__":
    main()
