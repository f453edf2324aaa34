#!/usr/bin/env python3
"""Mutation check of the test suite: break the code on purpose, one line at a time, and see
which test notices.

Usage:
    python scripts/mutants.py [--only NAME ...] [--keep] [--list]

Each mutant is a deliberate one-line breakage of a behaviour README.md and docs/ promise. For each, the
checkout's tracked files (as they are in the working tree) are copied into a scratch folder, the
breakage is applied there (never to this checkout), and the tests that should catch it run
against the scratch copy (pytest -x, one thread; the copy sits beside a link to ../shared, so
the real-data tests run there as here). First the unmutated copy runs every named test: when it
is not green the check stops (a failure there would count as a catch). One line per mutant:
"caught by <test>" (one of the tests the mutant names) or MISSED. Exit status 1 when a mutant is missed or its target line no longer exists in the code
(the mutant must then be updated), 0 when every mutant is caught.

--only NAME ...   run these mutants only (names from --list)
--jobs N          mutants checked at once, each its own scratch copy and one-thread pytest
                  (default: the number of CPUs, at most 4)
--keep            keep the scratch folders (their paths are printed)
--list            print the mutants and exit
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: name → (file, exact old text, new text, tests that should catch it, what it breaks)
MUTANTS = {
    "allocator-not-applied": (
        "recipes/train.py",
        'ALLOCATOR = tune_cpu_allocator() if __name__ == "__main__" else None',
        'ALLOCATOR = None',
        ["tests/test_runtime.py::test_train_script_sets_huge_pages_before_torch_is_imported"],
        "train.py trains with the default allocator (no huge pages, freed memory returned)"),
    "mmap-threshold-default": (
        "audioattn_sb/runtime.py",
        "MMAP_THRESHOLD = 32 * 2**20",
        "MMAP_THRESHOLD = 128 * 2**10",
        ["tests/test_runtime.py::test_glibc_takes_a_16_mib_block_from_the_heap_once_tuned"],
        "large activations still come from a fresh mmap every step"),
    "dirty-counts-untracked": (
        "audioattn_sb/utils.py",
        '        dirty = git("status", "--porcelain", "--untracked-files=no")',
        '        dirty = git("status", "--porcelain", "--untracked-files=all")',
        ["tests/test_utils.py::test_code_commit_names_the_head_and_marks_changed_tracked_files"],
        "results.json's code_commit calls a checkout dirty for untracked files (a new file not yet added)"),
    "attention-not-masked": (
        "audioattn_sb/attention/discrete.py",
        "    work = torch.where(mask, work, fill).masked_fill(~has_valid, 0.0)",
        "    work = work.masked_fill(~has_valid, 0.0)",
        ["tests/test_discrete_attention.py"],
        "padded frames get attention weight"),
    "logits-averaged": (
        "audioattn_sb/brains/multilabel.py",
        "probs=torch.sigmoid(predictions.detach().float()).cpu(),",
        "probs=predictions.detach().float().cpu(),",
        ["tests/test_multilabel_recipe.py::test_brain_averages_chunk_probabilities_not_logits"],
        "clip scores average chunk logits instead of probabilities"),
    "valid-equals-test-allowed": (
        "audioattn_sb/data/urbansound8k.py",
        "        if not allow_valid_test_overlap:",
        "        if False:",
        ["tests/test_urbansound8k_prep.py", "tests/test_recipe.py::"
         "test_valid_equal_test_is_refused_before_any_work"],
        "valid fold = test fold silently allowed"),
    "sigma-frozen": (
        "audioattn_sb/attention/continuous.py",
        "            sigma_sq = bg.sigma_sq_from_variance(var, self.alpha)",
        "            sigma_sq = bg.sigma_sq_from_variance(var, self.alpha).detach()",
        ["tests/test_continuous_pooling.py"],
        "the continuous density's σ² gets no gradient"),
    "checkpoint-highest-error": (
        "audioattn_sb/brains/base.py",
        '    checkpoint_key = {"min_key": "error"}',
        '    checkpoint_key = {"max_key": "error"}',
        ["tests/test_recipe.py::test_two_epochs_then_resume"],
        "the test uses the checkpoint of the highest valid error"),
    "checkpoint-meta-first": (
        "audioattn_sb/checkpoints.py",
        "        self._pending_meta = (pathlib.Path(fpath), meta)",
        "        self._pending_meta = (pathlib.Path(fpath), meta); write_meta_atomically(fpath, meta)",
        ["tests/test_checkpoints.py"],
        "a checkpoint's CKPT.yaml is written before its files (a kill inside a save leaves a "
        "half-written checkpoint that counts)"),
    "average-not-restored": (
        "audioattn_sb/brains/base.py",
        "            self.weight_average.restore()",
        "            pass",
        ["tests/test_weight_average.py"],
        "after validation the model keeps the averaged weights: training goes on from them and "
        "the checkpoint saves them as the model's own"),
    "cache-over-sources": (
        "audioattn_sb/data/preparation.py",
        "        if _inside(cache, real):",
        "        if False:",
        ["tests/test_prepare_guards.py"],
        "a cache folder inside the corpus's audio folder is accepted (every source rewritten "
        "at 16 kHz)"),
    "name-leaves-audio-folder": (
        "audioattn_sb/data/preparation.py",
        '    if norm in (".", "..") or norm.startswith(".." + os.sep):',
        "    if False:",
        ["tests/test_prepare_guards.py"],
        "a csv file name with .. reads and rewrites a file outside the data folder"),
    "failed-setup-removes-parent": (
        "audioattn_sb/run_folder.py",
        "            try:\n                os.rmdir(d)",
        "            try:\n                shutil.rmtree(d)",
        ["tests/test_run_folder.py"],
        "a failed set-up removes the new parent folder with a sibling run inside"),
    "run-folder-not-locked": (
        "audioattn_sb/run_folder.py",
        "                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "                pass",
        ["tests/test_run_folder.py"],
        "a second process runs into a run folder in use"),
    "browser-not-escaped": (
        "audioattn_sb/inspection/browser.py",
        "const esc = (s) => String(s).replace(",
        "const esc = (s) => String(s); const _esc = (s) => String(s).replace(",
        ["tests/test_browser.py::test_no_script_from_a_name_runs_in_any_view"],
        "a file or class name is inserted as HTML in the browser's clip heading (its script "
        "runs)"),
    "distillation-ignored": (
        "audioattn_sb/brains/base.py",
        "        return (1 - w) * loss + w * term",
        "        return loss + 0 * term",
        ["tests/test_distill.py::test_brain_loss_mixes_nll_and_the_teacher_term"],
        "--teacher trains without the teacher's term"),
    "multilabel-distillation-ignored": (
        "audioattn_sb/brains/multilabel.py",
        "        loss = self.mix_distillation(loss, forward, stage)  # the teacher's logits",
        "        pass",
        ["tests/test_distill.py::test_multilabel_brain_loss_mixes_bce_and_the_teacher_term"],
        "--teacher on a multi-label run trains without the teacher's term"),
    "teacher-of-other-data-allowed": (
        "audioattn_sb/distill.py",
        "            not _same_folder(res.data_folder, data_folder):",
        "            False:",
        ["tests/test_distill.py::test_fixed_split_runs_take_a_teacher_of_the_same_split_and_data"],
        "an FSD50K run accepts a teacher trained on another data folder (which may hold its eval "
        "clips)"),
    "teacher-leak-allowed": (
        "audioattn_sb/distill.py",
        "        seen = sorted(test & set(t_folds.get(split) or []))",
        "        seen = []",
        ["tests/test_distill.py::test_teachers_that_saw_a_test_fold_are_refused"],
        "a teacher trained on this run's test fold is accepted"),
    "ensemble-checks-one-teacher": (
        "audioattn_sb/distill.py",
        '            for run in teacher_runs(hparams["teacher"])]',
        '            for run in teacher_runs(hparams["teacher"])[:1]]',
        ["tests/test_distill.py::test_each_teacher_of_an_ensemble_is_checked"],
        "--teacher=[A, B] checks only A: a B trained on this run's test fold is accepted"),
    "ensemble-of-log-probabilities": (
        "audioattn_sb/distill.py",
        "    return torch.logsumexp(predictions, dim=0) - math.log(k)",
        "    return predictions.mean(0)",
        ["tests/test_distill.py::test_an_ensemble_of_teachers_is_the_mean_of_their_probabilities"],
        "an ensemble of teachers averages log-probabilities (a geometric mean, not normalised) "
        "instead of probabilities"),
    "hf-folder-unchecked": (
        "audioattn_sb/inspection/pretrained.py",
        "    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, fname)):",
        "    if False:",
        ["tests/test_pretrained.py::test_model_folder_without_a_required_file_is_one_error_line"],
        "--hf_model on a folder without preprocessor_config.json says nothing of the missing file"),
    "noisy-test-reads-clean": (
        "audioattn_sb/recipe.py",
        "    manifests, _ = prepare_manifests(hparams, corpus, data_folder=folder,",
        '    manifests, _ = prepare_manifests(hparams, corpus, data_folder=hparams["data_folder"],',
        ["tests/test_compact_recipe.py::test_compact_trains_two_epochs_with_augmentation"],
        "the noisy test reads the clean data folder (test_noisy_accuracy = the clean accuracy)"),
    "loss-per-batch": (
        "audioattn_sb/brains/base.py",
        "        loss = sum(value * n for value, n in self._eval_parts[\"loss\"]) / total if total else \\",
        "        loss = sum(value for value, n in self._eval_parts[\"loss\"]) / len(self._eval_parts[\"loss\"]) if total else \\",
        ["tests/test_multilabel_recipe.py::test_brain_scores_clips_by_averaging_chunk_probabilities"],
        "the valid/test loss averages batches instead of items (a short last batch counts as much "
        "as a full one)"),
    "valid-fold-previous": (
        "audioattn_sb/folds.py",
        "    valid = test_fold % num_folds + 1",
        "    valid = (test_fold - 2) % num_folds + 1",
        ["tests/test_folds.py::test_fold_split_and_fold_loop_commands_follow_the_written_protocol"],
        "test fold k validates on fold k − 1 instead of k mod n + 1 (still a partition, every fold "
        "validating once: not the protocol's split)"),
    "last-checkpoint-is-best": (
        "audioattn_sb/brains/base.py",
        '    return dict(checkpoint_key) if rule == "best_valid" else {"max_key": "epoch"}',
        "    return dict(checkpoint_key)",
        ["tests/test_checkpoints.py::"
         "test_test_checkpoint_rules_pick_best_valid_or_last_end_of_epoch",
         "tests/test_multilabel_recipe.py::"
         "test_brain_keeps_and_tests_the_checkpoint_of_the_highest_valid_map"],
        "test_checkpoint: last tests the best-valid checkpoint instead of the last epoch's"),
    "multilabel-min-map": (
        "audioattn_sb/brains/multilabel.py",
        '    checkpoint_key = {"max_key": "mAP"}',
        '    checkpoint_key = {"min_key": "mAP"}',
        ["tests/test_multilabel_recipe.py::"
         "test_brain_keeps_and_tests_the_checkpoint_of_the_highest_valid_map"],
        "a multi-label run keeps (and tests) the checkpoint of the lowest valid mAP"),
    "beta-gaussian-grad-term": (
        "audioattn_sb/attention/beta_gaussian.py",
        "    w1, dd = _integrals(u0, h, m, [[0.0, 1.0], [-1.0, 0.0, 2.0 * n + 1.0]], [True, True],",
        "    w1, dd = _integrals(u0, h, m, [[0.0, 1.0], [0.0, 0.0, 2.0 * n + 1.0]], [True, True],",
        ["tests/test_beta_gaussian.py::test_gradcheck"],
        "the β-Gaussian backward's ∂r/∂σ² loses its −W₀ term (wrong σ² gradients)"),
    "continuous-pad-in-moments": (
        "audioattn_sb/attention/continuous.py",
        '            weights = masked_attention(self.scorer(x), mask, "entmax", self.discrete_alpha)',
        '            weights = masked_attention(self.scorer(x), torch.ones_like(mask), "entmax", '
        "self.discrete_alpha)",
        ["tests/test_continuous_pooling.py::test_padding_invariance"],
        "padded frames get discrete weight and enter the continuous density's μ and σ² (a clip's "
        "density depends on its batch)"),
    "mass-in-event-over-clip": (
        "audioattn_sb/inspection/attention.py",
        "        mass = continuous_mass(on / duration, off / duration, record[\"mu\"], "
        "record[\"sigma_sq\"],",
        "        mass = continuous_mass(0.0, 1.0, record[\"mu\"], record[\"sigma_sq\"],",
        ["tests/test_localisation.py::test_continuous_mass_in_event_against_quadrature"],
        "a continuous density's mass_in_event is its mass over the whole clip, not the event"),
    "browser-audio-sample-late": (
        "audioattn_sb/inspection/browser.py",
        "    wave = resample(to_mono(wave.T if wave.ndim == 2 else wave), rate, AUDIO_RATE)\n",
        "    wave = resample(to_mono(wave.T if wave.ndim == 2 else wave), rate, AUDIO_RATE)[1:]\n",
        ["tests/test_browser.py::test_player_audio_is_the_manifest_clip_at_8khz_sample_for_sample"],
        "the browser's player drops the clip's first sample (its audio runs one sample early "
        "against the attention; within the duration check's tolerance)"),
    "attention-field-renamed": (
        "audioattn_sb/attention/output.py",
        "    sigma_sq: torch.Tensor = None",
        "    sigma2: torch.Tensor = None",
        ["tests/test_attention_output.py::"
         "test_each_pooling_family_fills_its_fields_with_the_documented_shapes"],
        "the attention's sigma_sq field is renamed (sigma2): the continuous pooling, the CSV "
        "export and the density records read a field that no longer exists"),
    "evaluation-augments": (
        "audioattn_sb/brains/base.py",
        '        return stage == sb.Stage.TRAIN and bool(getattr(self.hparams, "augment", False))',
        '        return bool(getattr(self.hparams, "augment", False))',
        ["tests/test_augment.py::test_evaluation_is_bit_identical_with_and_without_augment"],
        "validation and test augment too (waveform, time roll and feature masks)"),
    "conv-module-sees-padding": (
        "audioattn_sb/models/transformer.py",
        "            h = h.masked_fill(~mask[..., None], 0.0)\n        h = self.depthwise(",
        "            pass\n        h = self.depthwise(",
        ["tests/test_transformer_model.py::"
         "test_convolution_module_against_a_hand_computation_and_its_locality"],
        "the convolution module's depthwise convolution reads the padded frames"),
    "empty-teacher-means-none": (
        "audioattn_sb/recipe.py",
        '    if values.get("teacher") is not None:  # before any work',
        '    if values.get("teacher"):  # before any work',
        ["tests/test_distill.py::test_command_line_refuses_an_empty_teacher_and_null_means_none"],
        "--teacher=[] trains without a teacher instead of being refused"),
    "crop-at-clip-start": (
        "audioattn_sb/augment.py",
        "        start = torch.floor(torch.rand(n.shape, device=x.device, dtype=torch.float64)",
        "        start = 0 * torch.floor(torch.rand(n.shape, device=x.device, dtype=torch.float64)",
        ["tests/test_augment.py::test_random_crop_draws_window_lengths_and_starts_as_documented"],
        "the random crop always keeps the clip's first frames"),
    "crop-in-evaluation": (
        "audioattn_sb/brains/base.py",
        "            if random_crop is not None:",
        "            if random_crop is not None and stage == sb.Stage.VALID:",
        ["tests/test_augment.py::test_evaluation_is_bit_identical_with_and_without_augment"],
        "the random crop is never applied (training keeps the whole clips)"),
}


def scratch_folder(name):
    """A new scratch folder ``<tmp>/<name>/main`` beside a link ``<tmp>/<name>/shared`` to this
    checkout's ``../shared`` (when it exists), so that the real-data tests run there too."""
    parent = tempfile.mkdtemp(prefix=name)
    shared = os.path.join(os.path.dirname(REPO), "shared")
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(parent, "shared"))
    dest = os.path.join(parent, "main")
    os.makedirs(dest)
    return dest


def scratch_copy(dest):
    """Copy the checkout's tracked files (working-tree contents) into ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = os.path.join(REPO, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def apply(dest, path, old, new):
    """Replace the one occurrence of ``old`` in ``dest/path``; False when it is not there once."""
    full = os.path.join(dest, path)
    with open(full, encoding="utf-8") as f:
        text = f.read()
    if text.count(old) != 1:
        return False
    with open(full, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))
    return True


def run_tests(dest, tests):
    """``(caught?, the failing test or a reason)`` for pytest on the scratch copy."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": dest}
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                        *tests], cwd=dest, env=env, capture_output=True, text=True,
                       timeout=1200)
    if p.returncode == 0:
        return False, "all passed"
    if p.returncode == 5:
        return False, "no test collected"
    if p.returncode != 1:  # 2-4: interrupted, internal or usage error (a test file not found)
        return False, f"pytest exit {p.returncode}, no test failed: {p.stdout[-300:]!r}"
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", p.stdout, re.M)
    return True, failed[0] if failed else f"pytest exit {p.returncode}"


def check_mutant(name, keep=False):
    """``(ok?, report line)`` for one mutant, on its own scratch copy."""
    path, old, new, tests, what = MUTANTS[name]
    dest = scratch_folder(f"mutant_{name}_")
    t0 = time.time()
    try:
        scratch_copy(dest)
        if not apply(dest, path, old, new):
            return False, f"{name:28s} STALE: the line to break is not (once) in {path}"
        caught, detail = run_tests(dest, tests)
        verdict = f"caught by {detail}" if caught else f"MISSED ({detail})"
        return caught, f"{name:28s} {verdict}  [{what}; {time.time() - t0:.0f} s]"
    finally:
        if keep:
            print(f"  scratch copy: {dest}", flush=True)
        else:
            shutil.rmtree(os.path.dirname(dest), ignore_errors=True)


def check_baseline(tests):
    """``(green?, detail)``: the unmutated copy on ``tests``."""
    dest = scratch_folder("mutant_baseline_")
    try:
        scratch_copy(dest)
        failed, detail = run_tests(dest, tests)
    finally:
        shutil.rmtree(os.path.dirname(dest), ignore_errors=True)
    return not failed and detail == "all passed", detail


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", default=None, choices=sorted(MUTANTS), metavar="NAME")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--keep", action="store_true")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, (path, _, _, tests, what) in MUTANTS.items():
            print(f"{name:28s} {what} ({path}; caught by {', '.join(tests)})")
        return 0
    if args.jobs < 1:
        p.error(f"--jobs must be ≥ 1, got {args.jobs}")
    names = args.only or list(MUTANTS)
    # the baseline: the unmutated copy must pass every test a mutant names, or a "catch" could
    # be a failure that has nothing to do with the mutant (split over the jobs: independent tests)
    tests = sorted({t for name in names for t in MUTANTS[name][3]})
    t0 = time.time()
    parts = [tests[i::args.jobs] for i in range(min(args.jobs, len(tests)))]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for green, detail in pool.map(check_baseline, parts):
            if not green:
                print(f"baseline NOT GREEN: the unmutated copy fails ({detail}); fix that first")
                return 1
    print(f"{'baseline':28s} green: {len(tests)} test targets pass unmutated "
          f"[{time.time() - t0:.0f} s]", flush=True)
    bad = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(check_mutant, name, args.keep) for name in names]
        for future in concurrent.futures.as_completed(futures):
            ok, line = future.result()
            bad += not ok
            print(line, flush=True)
    print(f"{len(names) - bad} of {len(names)} mutants caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
