"""Fold protocol, variant parsing, aggregation table (vs numpy), fold-loop commands."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from audioattn_sb.fold_runner import build_commands
from audioattn_sb.folds import (aggregate, collect_results, fold_split, parse_variant,
                                rows_to_csv, rows_to_markdown, write_table)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("n", [5, 10])
def test_fold_split_is_a_partition_with_distinct_valid_and_test(n):
    valids = []
    for k in range(1, n + 1):
        train, valid, test = fold_split(k, n)
        assert sorted(train + valid + test) == list(range(1, n + 1))
        assert test == [k] and valid != test
        valids.append(valid[0])
    # every fold validates exactly once
    assert sorted(valids) == list(range(1, n + 1))


#: the protocol written out by hand (docs/training.md, folds.py): test fold k validates on fold k mod n + 1
#: (the next one; the last test fold wraps round to fold 1) and the other n − 2 folds train
PROTOCOL_VALID = {5: {1: 2, 2: 3, 3: 4, 4: 5, 5: 1},
                  10: {1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 10: 1}}


@pytest.mark.parametrize("n", [5, 10])
def test_fold_split_and_fold_loop_commands_follow_the_written_protocol(n):
    """Each test fold's validation fold is the one the protocol names (a table, not the
    formula), the others train; the run_folds commands pass exactly those folds."""
    hp = os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml")
    cmds = {c["fold"]: c["args"] for c in build_commands(hp, "data/x", n, list(range(1, n + 1)),
                                                          ["discrete:softmax"], [])}
    assert sorted(cmds) == list(range(1, n + 1))
    for k, v in PROTOCOL_VALID[n].items():
        rest = [f for f in range(1, n + 1) if f not in (k, v)]
        assert fold_split(k, n) == (rest, [v], [k]), k
        assert f"--train_fold_nums={rest}" in cmds[k]
        assert f"--valid_fold_nums={[v]}" in cmds[k]
        assert f"--test_fold_nums={[k]}" in cmds[k]


def test_fold_split_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        fold_split(11, 10)
    with pytest.raises(ValueError, match="at least 3"):
        fold_split(1, 2)


def test_parse_variant_accepts_predecessor_trailing_comma_and_rejects_garbage():
    assert parse_variant("discrete:softmax,") == ("discrete", "softmax", None)
    with pytest.raises(ValueError, match="domain:max_activation"):
        parse_variant("softmax")
    with pytest.raises(ValueError):
        parse_variant("discrete:entmax:abc")


def _fake_run(root, tag, fold, acc, epochs=20, seed=0, exp="exp", noisy=None):
    d = os.path.join(root, exp, tag, f"test{fold}_valid{fold % 5 + 1}", f"seed{seed}")
    os.makedirs(d, exist_ok=True)
    r = {"experiment_name": exp, "attention": {"tag": tag}, "number_of_epochs": epochs,
         "folds": {"train": [], "valid": [fold % 5 + 1], "test": [fold]}, "seed": seed,
         "test_accuracy": acc, "test_error": 1 - acc, "train_epoch_seconds": [1.5, 2.5]}
    if noisy is not None:
        r["test_noisy_accuracy"] = noisy
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(r, f)
    return d


def test_epoch_time_column_is_the_median_robust_to_a_paused_epoch():
    """A run paused for 10 minutes during one epoch: the mean epoch time explodes, the table's
    median stays the run's real pace."""
    runs = [{"experiment_name": "e", "attention": {"tag": "discrete-softmax"},
             "number_of_epochs": 5, "folds": {"test": [k]}, "test_accuracy": 0.5,
             "test_error": 0.5, "train_epoch_seconds": secs}
            for k, secs in [(1, [2.0, 2.2, 601.0, 2.1, 2.0]), (2, [1.9, 2.0, 2.1, 2.3, 2.2])]]
    row = aggregate(runs)[0]
    everything = [2.0, 2.2, 601.0, 2.1, 2.0, 1.9, 2.0, 2.1, 2.3, 2.2]
    assert row["epoch_seconds_mean"] == pytest.approx(np.mean(everything))
    assert row["epoch_seconds_median"] == pytest.approx(np.median(everything)) == 2.1
    md = rows_to_markdown([row])
    assert "s / epoch (median) |" in md.splitlines()[0] and md.splitlines()[2].endswith("| 2.10 |")


def test_aggregate_matches_numpy_and_writes_csv_md_png(tmp_path):
    rng = np.random.default_rng(0)
    accs = {"discrete-softmax": rng.uniform(0.5, 0.9, 5), "discrete-sparsemax": rng.uniform(0.5, 0.9, 5)}
    for tag, values in accs.items():
        for k, a in enumerate(values, start=1):
            _fake_run(str(tmp_path), tag, k, float(a))
    rows = aggregate(collect_results([str(tmp_path)]))
    assert len(rows) == 2
    for row in rows:
        vals = accs[row["attention"]]
        assert row["accuracy_mean"] == pytest.approx(vals.mean(), abs=1e-12)
        assert row["accuracy_std"] == pytest.approx(vals.std(ddof=1), abs=1e-12)
        assert row["test_folds"] == "1 2 3 4 5" and row["n_runs"] == 5
        assert row["epoch_seconds_mean"] == pytest.approx(2.0)
        assert row["duplicate_folds"] == ""
    csv_path, md_path, png_path, best_png = write_table(rows, str(tmp_path / "table"))
    assert open(best_png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [r["attention"] for r in table] == [r["attention"] for r in rows]
    assert float(table[0]["accuracy_mean"]) == pytest.approx(rows[0]["accuracy_mean"], abs=1e-6)
    md = open(md_path).read()
    assert f"{rows[0]['accuracy_mean']:.3f} ± {rows[0]['accuracy_std']:.3f}" in md
    with open(png_path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width >= 400 and height == 400
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp") or ".tmp." in p]


def test_aggregate_names_the_machines_of_each_row(tmp_path):
    """Fold accuracies depend on the CPU model: a row says which machines ran its folds (CSV
    column and, only when some run records one, a Markdown column)."""
    runs = [{"experiment_name": "e", "attention": {"tag": tag}, "number_of_epochs": 2,
             "folds": {"test": [k]}, "test_accuracy": 0.5, "test_error": 0.5,
             "train_epoch_seconds": [1.0], **({"machine": {"cpu": cpu}} if cpu else {})}
            for tag, k, cpu in [("discrete-softmax", 1, "AMD EPYC"), ("discrete-softmax", 2, None),
                                ("discrete-softmax", 3, "AMD EPYC"), ("discrete-softmax", 4, "Xeon"),
                                ("continuous-biweight", 1, None)]]
    rows = {r["attention"]: r for r in aggregate(runs)}
    assert rows["discrete-softmax"]["machines"] == "AMD EPYC ×2; not recorded ×1; Xeon ×1"
    assert rows["continuous-biweight"]["machines"] == ""
    md = rows_to_markdown(list(rows.values())).splitlines()
    assert md[0].endswith("| machines |") and md[1].count("|---") == md[0].count(" | ") + 1
    assert md[2].endswith("| AMD EPYC ×2; not recorded ×1; Xeon ×1 |")
    assert md[3].endswith("| not recorded |")
    assert "machines" not in rows_to_markdown([rows["continuous-biweight"]])
    table = list(csv.DictReader(rows_to_csv(list(rows.values())).splitlines()))
    assert table[0]["machines"] == rows["discrete-softmax"]["machines"]


def test_aggregate_noisy_accuracy_and_best_epochs(tmp_path):
    """Noisy-test mean ± std and best epochs per configuration, against numpy; the noisy column
    appears only when every run of a row has a noisy test."""
    noisy = [0.55, 0.7, 0.62]
    for k, (a, n) in enumerate(zip([0.8, 0.9, 0.85], noisy), start=1):
        d = _fake_run(str(tmp_path / "a"), "discrete-softmax", k, a)
        path = os.path.join(d, "results.json")
        r = json.load(open(path))
        r.update(test_noisy_accuracy=n, best_epoch=10 * k, epochs_completed=30)
        json.dump(r, open(path, "w"))
    _fake_run(str(tmp_path / "b"), "continuous-biweight", 1, 0.5)
    rows = {r["attention"]: r for r in aggregate(collect_results([str(tmp_path)]))}
    row = rows["discrete-softmax"]
    assert row["noisy_accuracy_mean"] == pytest.approx(np.mean(noisy), abs=1e-12)
    assert row["noisy_accuracy_std"] == pytest.approx(np.std(noisy, ddof=1), abs=1e-12)
    assert row["best_epochs"] == "10 20 30" and row["n_last_epoch_best"] == 1
    assert math.isnan(rows["continuous-biweight"]["noisy_accuracy_mean"])
    md = rows_to_markdown(list(rows.values()))
    assert f"{np.mean(noisy):.3f} ± {np.std(noisy, ddof=1):.3f}" in md
    assert "| – |" in md and "noisy test" in md
    assert "noisy test" not in rows_to_markdown([rows["continuous-biweight"]])


def test_aggregate_reads_localisation_of_saved_attentions(tmp_path):
    """Runs with saved_attentions/*.json holding localisation means (save_attentions.py
    --events_csv) get mass in event mean ± std and the uniform baseline in the table."""
    masses, uniform = [0.4, 0.6], [0.25, 0.35]
    for k, (m, u) in enumerate(zip(masses, uniform), start=1):
        d = _fake_run(str(tmp_path), "continuous-sparsemax", k, 0.8)
        os.makedirs(os.path.join(d, "saved_attentions"))
        with open(os.path.join(d, "saved_attentions", "x.json"), "w") as f:
            json.dump({"localisation": {"mass_in_event": m, "uniform_mass": u}}, f)
        with open(os.path.join(d, "saved_attentions", "old.json"), "w") as f:
            json.dump({"localisation": None}, f)
    (row,) = aggregate(collect_results([str(tmp_path)]))
    assert row["mass_in_event_mean"] == pytest.approx(0.5)
    assert row["mass_in_event_std"] == pytest.approx(np.std(masses, ddof=1))
    assert row["uniform_mass_mean"] == pytest.approx(0.3)
    assert "0.500 ± 0.141 (0.300)" in rows_to_markdown([row])


def test_aggregate_median_support_over_all_clips_and_selected_classes(tmp_path):
    """Median support width over the clips of every run (not a mean of run medians), over the
    clips of --support_classes only when given, ∞ for unbounded (Gaussian) supports."""
    per_run = [{"dog": [0.1, 0.3], "rain": [1.2, 1.4, 1.3]},
               {"dog": [0.2], "rooster": [0.5], "rain": [1.1]}]
    for tag, supports in (("continuous-sparsemax", per_run),
                          ("continuous-gaussian", [{"dog": [None], "rain": [None]}] * 2)):
        for k, by_class in enumerate(supports, start=1):
            d = _fake_run(str(tmp_path), tag, k, 0.8)
            os.makedirs(os.path.join(d, "saved_attentions"))
            with open(os.path.join(d, "saved_attentions", "x.json"), "w") as f:
                json.dump({"localisation": {"mass_in_event": 0.5, "uniform_mass": 0.3,
                                            "supports_by_class": by_class}}, f)
    runs = collect_results([str(tmp_path)])
    rows = {r["attention"]: r for r in aggregate(runs, support_classes=["dog", "rooster"])}
    row = rows["continuous-sparsemax"]
    every = [w for by in per_run for ws in by.values() for w in ws]
    assert row["support_median"] == pytest.approx(np.median(every))
    assert row["support_median_classes"] == pytest.approx(np.median([0.1, 0.3, 0.2, 0.5]))
    assert math.isinf(rows["continuous-gaussian"]["support_median"])
    md = rows_to_markdown(list(rows.values()))
    assert "median support (selected classes)" in md and "| ∞ |" in md
    assert f"| {np.median(every):.2f} | {np.median([0.1, 0.3, 0.2, 0.5]):.2f} |" in md
    # without classes: no class column
    assert "selected classes" not in rows_to_markdown(aggregate(runs))


def test_aggregate_reads_supports_from_the_csv_of_an_older_summary(tmp_path):
    """A saved_attentions JSON written before the support figures existed: the widths come
    from its summary CSV (label, supp columns)."""
    d = _fake_run(str(tmp_path), "continuous-sparsemax", 1, 0.8)
    os.makedirs(os.path.join(d, "saved_attentions"))
    summary = os.path.join(d, "saved_attentions", "x.csv")
    with open(summary, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_id", "label", "supp"])
        w.writerows([["a", "dog", "0.2"], ["b", "dog", "0.6"], ["c", "rain", "1.3"]])
    with open(os.path.join(d, "saved_attentions", "x.json"), "w") as f:
        json.dump({"summary_csv": summary,
                   "localisation": {"mass_in_event": 0.5, "uniform_mass": 0.3}}, f)
    (row,) = aggregate(collect_results([str(tmp_path)]), support_classes=["dog"])
    assert row["support_median"] == pytest.approx(0.6)
    assert row["support_median_classes"] == pytest.approx(0.4)


def test_collect_results_globs_match_folders_and_files(tmp_path):
    for tag in ("discrete-softmax", "continuous-biweight"):
        _fake_run(str(tmp_path), tag, 1, 0.5)
    by_folder = collect_results([str(tmp_path / "exp" / "discrete-*")])
    by_file = collect_results([str(tmp_path / "exp" / "*" / "*" / "seed0" / "results.json")])
    assert [r.attention_tag for r in by_folder] == ["discrete-softmax"]
    assert len(by_file) == 2


def test_aggregate_flags_two_runs_on_the_same_fold(tmp_path):
    _fake_run(str(tmp_path), "discrete-softmax", 1, 0.5, seed=0)
    _fake_run(str(tmp_path), "discrete-softmax", 1, 0.7, seed=1)
    (row,) = aggregate(collect_results([str(tmp_path)]))
    assert row["duplicate_folds"] == "1" and row["n_runs"] == 2


def test_collect_results_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no results.json"):
        collect_results([str(tmp_path)])
    bad = tmp_path / "x" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        collect_results([str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        collect_results([str(tmp_path / "missing")])


def test_aggregate_cli(tmp_path):
    for k, a in enumerate([0.6, 0.8], start=1):
        _fake_run(str(tmp_path), "continuous-biweight", k, a)
    out = tmp_path / "t"
    p = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "aggregate_folds.py"),
                        str(tmp_path), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "0.700 ± 0.141" in p.stdout
    assert (tmp_path / "t.png").stat().st_size > 1000
    p = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "aggregate_folds.py"),
                        str(tmp_path / "nothing")], capture_output=True, text=True)
    assert p.returncode == 2 and "error:" in p.stderr and "Traceback" not in p.stderr


def test_paired_comparison_against_a_baseline_experiment(tmp_path):
    """--paired_to: differences per shared run (same attention, folds, seed) against a hand
    computation with scipy; a run without a baseline partner (fold 3, or another seed) is left
    out and counted; an unknown baseline is exit 2."""
    from scipy import stats

    base = {1: (0.75, 0.5), 2: (0.80, 0.6), 4: (0.70, 0.55)}
    new = {1: (0.80, 0.55), 2: (0.775, 0.6), 3: (0.9, 0.7), 4: (0.75, 0.5)}
    for k, (a, n) in base.items():
        _fake_run(str(tmp_path), "discrete-softmax", k, a, exp="base", noisy=n)
    for k, (a, n) in new.items():
        _fake_run(str(tmp_path), "discrete-softmax", k, a, exp="new", noisy=n)
    _fake_run(str(tmp_path), "discrete-softmax", 1, 0.1, exp="other", seed=1)
    d = np.array([new[k][0] - base[k][0] for k in (1, 2, 4)])
    p = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "aggregate_folds.py"),
                        str(tmp_path), "--out", str(tmp_path / "t"), "--paired_to", "base"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "t_paired.txt").read_text()
    assert text in p.stdout + "\n"
    test_line = next(line for line in text.splitlines() if "test: new − base" in line)
    assert "(3 of 4 runs paired with base)" in test_line
    assert f"{d.mean():+.4f} over 3 runs (wins 2, ties 0, losses 1" in test_line
    assert f"t-test p = {stats.ttest_1samp(d, 0).pvalue:.4f}" in test_line
    assert "noisy: new − base +0.0000 over 3 runs (wins 1, ties 1, losses 1" in text
    assert "other discrete-softmax (0 of 1 runs paired with base): no run shares" in text
    p = subprocess.run([sys.executable, os.path.join(REPO, "recipes", "aggregate_folds.py"),
                        str(tmp_path), "--out", str(tmp_path / "u"), "--paired_to", "nope"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "baseline experiment 'nope'" in p.stderr
    assert not (tmp_path / "u.csv").exists()


def test_fold_loop_commands_never_validate_on_test_and_have_distinct_outputs():
    hp = os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml")
    cmds = build_commands(hp, "data/x", 10, list(range(1, 11)),
                          ["discrete:softmax", "discrete:entmax:1.7", "continuous:biweight"], [])
    assert len(cmds) == 30
    assert len({c["output_folder"] for c in cmds}) == 30
    for c in cmds:
        args = c["args"]
        valid = next(a for a in args if a.startswith("--valid_fold_nums="))
        test = next(a for a in args if a.startswith("--test_fold_nums="))
        assert valid.split("=")[1] != test.split("=")[1]
    with pytest.raises(ValueError, match="output_folder"):
        build_commands(hp, "d", 10, [1], ["discrete:softmax"], ["--output_folder=x"])


@pytest.mark.slow
def test_run_folds_skips_finished_runs_runs_the_rest_and_writes_the_table(demo_us8k, tmp_path):
    """README: run_folds.py skips a run whose results.json exists (an interrupted loop resumes),
    runs the others, and writes the table over all of them."""
    root = tmp_path / "res"
    args = [os.path.join(REPO, "recipes", "run_folds.py"),
            os.path.join(REPO, "hparams", "urbansound8k_acrnn.yaml"),
            f"--data_folder={demo_us8k}", "--num_folds", "10", "--folds", "1",
            "--variants", "discrete:softmax", "discrete:sparsemax", "--results_root", str(root),
            "--", f"--cache_folder={tmp_path / 'cache'}", "--number_of_epochs=1",
            "--experiment_name=skip", "--noprogressbar"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a finished softmax run: its results.json (a marker value the loop must not overwrite)
    expected = root / "skip" / "discrete-softmax" / "test1_valid2" / "seed0"
    expected.mkdir(parents=True)
    json.dump({"experiment_name": "skip", "attention": {"tag": "discrete-softmax"},
               "number_of_epochs": 1, "folds": {"train": [], "valid": [2], "test": [1]},
               "test_accuracy": 0.123, "test_error": 0.877},
              open(expected / "results.json", "w"))
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                       cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "1 already done, 1 to run" in p.stdout
    assert json.load(open(expected / "results.json"))["test_accuracy"] == 0.123  # untouched
    ran = root / "skip" / "discrete-sparsemax" / "test1_valid2" / "seed0" / "results.json"
    assert json.load(open(ran))["epochs_completed"] == 1
    with open(root / "skip" / "folds_table.csv") as f:
        rows = {r["attention"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"discrete-softmax", "discrete-sparsemax"}
    assert float(rows["discrete-softmax"]["accuracy_mean"]) == pytest.approx(0.123)


def test_runs_tested_on_differently_chosen_checkpoints_are_not_averaged(tmp_path):
    """Folds of one variant tested with test_checkpoint: best_valid and last (e.g. a yaml whose
    default changed between sessions) give one row per rule, each named in the table."""
    for k, (a, rule) in enumerate([(0.8, None), (0.9, "last epoch"), (0.7, "last epoch")],
                                  start=1):
        d = _fake_run(str(tmp_path), "discrete-softmax", k, a)
        path = os.path.join(d, "results.json")
        r = json.load(open(path))
        if rule:
            r["checkpoint_selected_by"] = rule
        json.dump(r, open(path, "w"))
    rows = aggregate(collect_results([str(tmp_path)]))
    by = {r["tested_checkpoint"]: r for r in rows}
    assert set(by) == {"min valid error", "last epoch"}
    assert by["last epoch"]["accuracy_mean"] == pytest.approx(0.8)
    assert by["last epoch"]["test_folds"] == "2 3" and by["min valid error"]["test_folds"] == "1"
    md = rows_to_markdown(rows)
    assert "discrete-softmax (tested: last epoch)" in md
    assert "(tested:" not in rows_to_markdown([by["last epoch"]])
    assert "tested_checkpoint" in rows_to_csv(rows).splitlines()[0]


def test_runs_tested_with_and_without_a_weight_average_are_not_averaged(tmp_path):
    """average_epochs > 0 (validation and test on averaged weights) is another tested thing."""
    for k, (a, tau) in enumerate([(0.8, 0.0), (0.9, 10.0), (0.7, 10.0)], start=1):
        d = _fake_run(str(tmp_path), "discrete-softmax", k, a)
        path = os.path.join(d, "results.json")
        r = json.load(open(path))
        r["average_epochs"] = tau
        json.dump(r, open(path, "w"))
    rows = aggregate(collect_results([str(tmp_path)]))
    by = {r["tested_checkpoint"]: r for r in rows}
    assert set(by) == {"min valid error", "min valid error, weights averaged over 10 epochs"}
    assert by["min valid error"]["test_folds"] == "1"
    assert by["min valid error, weights averaged over 10 epochs"]["accuracy_mean"] == \
        pytest.approx(0.8)
    assert "discrete-softmax (tested: min valid error, weights averaged over 10 epochs)" in \
        rows_to_markdown(rows)


def test_weight_averaged_rows_also_report_each_runs_own_weights(tmp_path):
    """Runs with average_epochs > 0 test the averaged weights (the row's accuracy) and their own
    weights (``without_weight_average``): the own figures get their own mean ± std columns,
    computed here by hand; rows of runs that did not average show none."""
    own = [(0.7, 0.5), (0.8, 0.6), (0.75, 0.7)]
    for k, (a, (oa, on)) in enumerate(zip([0.8, 0.9, 0.7], own), start=1):
        d = _fake_run(str(tmp_path / "avg"), "discrete-softmax", k, a, noisy=0.55)
        path = os.path.join(d, "results.json")
        r = json.load(open(path))
        r["average_epochs"] = 10.0
        r["without_weight_average"] = {"test_accuracy": oa, "test_noisy_accuracy": on}
        json.dump(r, open(path, "w"))
        _fake_run(str(tmp_path / "plain"), "discrete-softmax", k, a, exp="plain")
    (row,) = aggregate(collect_results([str(tmp_path / "avg")]))
    assert row["accuracy_mean"] == pytest.approx(0.8)
    assert row["own_accuracy_mean"] == pytest.approx(0.75)
    assert row["own_accuracy_std"] == pytest.approx(0.05)
    assert row["own_noisy_accuracy_mean"] == pytest.approx(0.6)
    assert row["own_noisy_accuracy_std"] == pytest.approx(0.1)
    md = rows_to_markdown([row])
    assert "own weights: accuracy (noisy)" in md.splitlines()[0]
    assert "| 0.750 ± 0.050 (0.600 ± 0.100) |" in md
    (plain,) = aggregate(collect_results([str(tmp_path / "plain")]))
    assert math.isnan(plain["own_accuracy_mean"])
    assert "own weights" not in rows_to_markdown([plain])
    both = rows_to_markdown([row, plain]).splitlines()
    col = [c.strip() for c in both[0].split("|")].index("own weights: accuracy (noisy)")
    assert [c.strip() for c in both[-1].split("|")][col] == "–"


def test_box_plot_draws_each_configurations_fold_accuracies(tmp_path, monkeypatch):
    """The folds plot by content: one box per configuration at x = 1, 2, … and each fold's
    accuracy as a dot of that box (the runs' own numbers), on a 'test accuracy' axis."""
    import matplotlib.figure

    from audioattn_sb.folds import aggregate, collect_results
    from audioattn_sb.plots import box_plot

    accs = {"continuous-biweight": [0.6, 0.8, 0.7], "discrete-softmax": [0.5, 0.55, 0.9]}
    for tag, values in accs.items():
        for k, a in enumerate(values, start=1):
            _fake_run(str(tmp_path), tag, k, a)
    figures = []
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (figures.append(fig), savefig(fig, *a, **k))[1])
    rows = aggregate(collect_results([str(tmp_path)]))
    box_plot(rows, str(tmp_path / "box.png"))
    (fig,) = figures
    (ax,) = fig.axes
    assert ax.get_ylabel() == "test accuracy"
    dots = {}
    for coll in ax.collections:
        for x, y in coll.get_offsets():
            dots.setdefault(int(round(x)), []).append(round(float(y), 6))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(labels) == sorted(accs)
    for x, label in enumerate(labels, start=1):
        assert sorted(dots[x]) == sorted(accs[label]), (label, dots)
