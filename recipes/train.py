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
on the checkpoint the yaml's test_checkpoint names (best_valid: the lowest valid error; last: the
last epoch); with --average_epochs=N > 0 (the compact yamls) validation and test score a moving
average of the end-of-epoch weights, and the test is repeated with the checkpoint's own weights
(results.json: without_weight_average). Valid and test folds must differ (see
--allow_valid_test_overlap=True in the yaml). A key the yaml does not have stops at once with
the closest keys. The steps are in audioattn_sb.recipe; the corpora in audioattn_sb.data.corpora.

Environment: AUDIOATTN_CPU_ALLOCATOR=default keeps glibc's and PyTorch's memory defaults; by
default the process keeps freed activation memory and asks for huge pages (audioattn_sb.runtime:
the same numbers bit for bit, shorter epochs; log.txt says which).
"""

import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)

from audioattn_sb.runtime import describe, tune_cpu_allocator  # noqa: E402

# before torch is imported (PyTorch reads THP_MEM_ALLOC_ENABLE at its first allocation): shorter
# epochs, the same numbers bit for bit; AUDIOATTN_CPU_ALLOCATOR=default keeps the defaults
ALLOCATOR = tune_cpu_allocator() if __name__ == "__main__" else None

import logging  # noqa: E402
import time  # noqa: E402

import speechbrain as sb  # noqa: E402

from audioattn_sb import recipe  # noqa: E402
from audioattn_sb.data.corpora import prepare_manifests  # noqa: E402
from audioattn_sb.utils import run_cli  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)

    # the command line, checked before any work (unknown keys, folds, class count)
    hparams_file, run_opts, overrides, corpus = recipe.parse_command_line(argv)
    sb.utils.distributed.ddp_init_group(run_opts)  # no-op unless started by torchrun

    # the run folder, created and held by this process until the run ends (a second process on
    # it stops at once); a failed set-up removes only the folders this run created
    with recipe.run_folder(hparams_file, overrides) as run:
        return _run(run, hparams_file, run_opts, overrides, corpus, argv)


def _run(run, hparams_file, run_opts, overrides, corpus, argv):
    # the experiment's objects, its folder, the corpus's manifests and datasets
    with run.removed_if_setup_fails():
        hparams = recipe.load_hparams(hparams_file, overrides)
        if ALLOCATOR is not None:
            logging.getLogger(__name__).info(describe(ALLOCATOR))
        manifests, class_names = prepare_manifests(hparams, corpus)
        hparams["class_names"] = class_names
        datasets = recipe.build_datasets(hparams, manifests, corpus)
        recipe.set_lr_schedule(hparams, len(datasets["train"]))  # steps per epoch of this run

    # training: the checkpoint of each epoch is kept or not by the Brain's selection key
    brain = recipe.make_brain(hparams, run_opts, corpus)
    train_opts, test_opts = recipe.loader_options(hparams)
    start = time.time()
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=train_opts, valid_loader_kwargs=test_opts)
    train_seconds = time.time() - start
    epochs_completed = int(hparams["epoch_counter"].current)

    # the tests of the tested checkpoint (test_checkpoint: best valid or last), each returning its
    # statistics: the test folds, their noisy copy (noisy_test_folder) and, with a weight average
    # (average_epochs > 0), the same checkpoint's own weights; then results.json, written once
    tests = recipe.run_tests(hparams, brain, datasets["test"], corpus)
    results = recipe.build_results(hparams, brain, corpus, manifests, tests,
                                   hparams_file=hparams_file, overrides=overrides, argv=argv,
                                   epochs_completed=epochs_completed, train_seconds=train_seconds)
    return recipe.write_results(results, hparams, brain).to_dict()


if __name__ == "__main__":
    run_cli(main)
