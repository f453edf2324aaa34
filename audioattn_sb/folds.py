"""Cross-validation over predefined folds, and the table of mean ± std over folds.

Protocol (UrbanSound8K's authors: use the predefined folds, never reshuffle, report mean ± std):
for test fold k of n, the validation fold is the next one, ``k mod n + 1`` (fold 10 validates on
fold 1), and the other n − 2 folds train. The checkpoint is selected on the validation fold only;
the test fold is seen once, at the end.
"""

import csv
import glob
import io
import json
import logging
import math
import os
import statistics
from collections import Counter, OrderedDict

from audioattn_sb.plots import best_epochs_plot, box_plot
from audioattn_sb.results import RESULTS_JSON, RunResults, as_run_results
from audioattn_sb.utils import atomic_write_text

logger = logging.getLogger(__name__)


def fold_split(test_fold, num_folds=10):
    """(train folds, valid folds, test folds) for test fold k: valid = k mod n + 1.

    Example:
        >>> fold_split(1)
        ([3, 4, 5, 6, 7, 8, 9, 10], [2], [1])
        >>> fold_split(5, num_folds=5)
        ([2, 3, 4], [1], [5])
    """
    if num_folds < 3:
        raise ValueError(f"need at least 3 folds (train, valid, test), got {num_folds}")
    if not 1 <= test_fold <= num_folds:
        raise ValueError(f"test fold {test_fold} is outside 1..{num_folds}")
    valid = test_fold % num_folds + 1
    train = [f for f in range(1, num_folds + 1) if f not in (test_fold, valid)]
    return train, [valid], [test_fold]


def parse_variant(spec):
    """``domain:max_activation[:alpha]`` → (domain, max_activation, alpha or None).

    Example:
        >>> parse_variant("discrete:entmax:1.7")
        ('discrete', 'entmax', 1.7)
        >>> parse_variant("continuous:biweight")
        ('continuous', 'biweight', None)
    """
    parts = [p.strip() for p in spec.strip().strip(",").split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(
            f"bad attention variant {spec!r}: write domain:max_activation[:alpha], "
            "e.g. discrete:sparsemax or discrete:entmax:1.7"
        )
    alpha = float(parts[2]) if len(parts) == 3 else None
    return parts[0], parts[1], alpha


def _std(values):
    return statistics.stdev(values) if len(values) > 1 else float("nan")


def _saved_localisation(run_folder):
    """The localisation means (``mass_in_event`` …) of the newest ``saved_attentions/*.json`` of
    a run that has them (``save_attentions.py --events_csv``), or None."""
    best, newest = None, -1.0
    for meta in glob.glob(os.path.join(run_folder, "saved_attentions", "*.json")):
        try:
            with open(meta, encoding="utf-8") as fin:
                data = json.load(fin)
            loc = data.get("localisation")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if loc and loc.get("mass_in_event") is not None and os.path.getmtime(meta) > newest:
            best, newest = dict(loc), os.path.getmtime(meta)
            if "supports_by_class" not in best:  # written before the support figures existed
                best.update(_supports_from_csv(data.get("summary_csv")))
    return best


def _supports_from_csv(summary_csv):
    """The support figures of a save_attentions summary CSV (older JSONs lack them)."""
    from audioattn_sb.inspection.export import SUMMARY_COLUMNS, support_summary

    try:
        with open(summary_csv, newline="", encoding="utf-8") as f:
            rows = [[r.get(c, "") for c in SUMMARY_COLUMNS] for r in csv.DictReader(f)]
    except (OSError, TypeError):
        return {}
    return support_summary(rows)


def fold_run_results(results_root):
    """The ``results.json`` files of the finished runs of a ``run_folds.py`` tree
    (``<results_root>/<variant>/test<k>_valid<j>/seed<s>/results.json``), sorted."""
    return sorted(glob.glob(os.path.join(results_root, "*", "test*_valid*", "seed*",
                                         "results.json")))


def write_rows_csv(path, rows):
    """Write ``rows`` (dicts with the keys of the first) as a CSV at ``path``, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def mean_std_text(values):
    """``"mean ± std"`` of the numbers among ``values`` ("" entries skipped; "–" when none).

    Example:
        >>> mean_std_text([0.8, 0.9, ""]), mean_std_text([0.85]), mean_std_text([""])
        ('0.850 ± 0.071', '0.850', '–')
    """
    vals = [float(v) for v in values if v != ""]
    if not vals:
        return "–"
    return _pm(statistics.fmean(vals), _std(vals))


def paired_difference(diffs, what):
    """One line on paired differences (e.g. per run: one setting's accuracy − another's): mean,
    count, wins / ties / losses, paired t-test and Wilcoxon p-values (``None`` with < 2 runs).

    Example:
        >>> paired_difference([0.0125, 0.025, 0.0, -0.0125, 0.0375], "last − best_valid")
        'last − best_valid +0.0125 over 5 runs (wins 3, ties 1, losses 1; paired t-test p = 0.2302, Wilcoxon p = 0.3750)'
    """
    import numpy as np
    from scipy import stats

    d = np.asarray([float(x) for x in diffs], dtype=float)
    if len(d) < 2:
        return None
    t = stats.ttest_1samp(d, 0).pvalue if np.any(d != d[0]) else (1.0 if d[0] == 0 else 0.0)
    w = stats.wilcoxon(d).pvalue if np.any(d != 0) else 1.0
    return (f"{what} {d.mean():+.4f} over {len(d)} runs (wins {int((d > 0).sum())}, ties "
            f"{int((d == 0).sum())}, losses {int((d < 0).sum())}; paired t-test p = {t:.4f}, "
            f"Wilcoxon p = {w:.4f})")


def paired_summary(rows, variant_of, names):
    """Lines comparing two settings measured on the same runs: per variant (``variant_of(row)``)
    the run count and mean ± std of ``<a>_test``, ``<b>_test``, ``<a>_noisy``, ``<b>_noisy``
    (``names = (a, b)``; "" = not measured), then :func:`paired_difference` of b − a over all
    runs, for test and noisy test.

    Example:
        >>> rows = [{"v": "x", "a_test": 0.8, "b_test": 0.85, "a_noisy": "", "b_noisy": ""},
        ...         {"v": "x", "a_test": 0.9, "b_test": 0.9, "a_noisy": "", "b_noisy": ""}]
        >>> print("\\n".join(paired_summary(rows, lambda r: r["v"], ("a", "b"))))
        variant | runs | a test | b test | a noisy | b noisy
        x | 2 | 0.850 ± 0.071 | 0.875 ± 0.035 | – | –
        test: b − a +0.0250 over 2 runs (wins 1, ties 1, losses 0; paired t-test p = 0.5000, Wilcoxon p = 1.0000)
    """
    a, b = names
    columns = (f"{a}_test", f"{b}_test", f"{a}_noisy", f"{b}_noisy")
    lines = [" | ".join(["variant", "runs"] + [c.replace("_", " ") for c in columns])]
    by = OrderedDict()
    for r in rows:
        by.setdefault(variant_of(r), []).append(r)
    for variant, rs in sorted(by.items()):
        lines.append(" | ".join([variant, str(len(rs))]
                                + [mean_std_text([r[c] for r in rs]) for c in columns]))
    for split in ("test", "noisy"):
        line = paired_difference([float(r[f"{b}_{split}"]) - float(r[f"{a}_{split}"])
                                  for r in rows if r[f"{b}_{split}"] != ""],
                                 f"{split}: {b} − {a}")
        if line:
            lines.append(line)
    return lines


def paired_to(runs, baseline):
    """Each configuration against the ``baseline`` experiment on the same runs: lines of
    :func:`paired_difference` (mean, wins / ties / losses, p-values) of its test and noisy test
    accuracy minus the baseline's, over the runs that share attention tag, test and validation
    folds and seed with a baseline run (the folds are paired: each one's difficulty cancels).
    Configurations are grouped as :func:`aggregate` groups them; one with no shared run says so.

    Example:
        >>> def run(exp, k, a):
        ...     return {"experiment_name": exp, "attention": {"tag": "discrete-softmax"},
        ...             "number_of_epochs": 2, "folds": {"test": [k], "valid": [k % 5 + 1]},
        ...             "seed": 0, "test_accuracy": a}
        >>> runs = [run("base", 1, 0.75), run("base", 2, 0.8), run("new", 1, 0.8),
        ...         run("new", 2, 0.8), run("new", 3, 0.9)]
        >>> print("\\n".join(paired_to(runs, "base")))
        new discrete-softmax (2 of 3 runs paired with base) test: new − base +0.0250 over 2 runs (wins 1, ties 1, losses 0; paired t-test p = 0.5000, Wilcoxon p = 1.0000)
    """
    runs = [as_run_results(r) for r in runs]

    def pair_key(r):
        folds = r.folds or {}
        return (r.attention_tag, tuple(folds.get("test") or ()), tuple(folds.get("valid") or ()),
                r.seed)

    base = {}
    for r in runs:
        if r.experiment_name == baseline:
            base.setdefault(pair_key(r), r)
    if not base:
        raise ValueError(f"no run of the baseline experiment {baseline!r} among the results")
    groups = OrderedDict()
    for r in runs:
        if r.experiment_name != baseline:
            groups.setdefault((r.experiment_name, r.attention_tag, r.number_of_epochs, r.tested),
                              []).append(r)
    lines = []
    for (exp, tag, _, _), rs in groups.items():
        pairs = [(r, base[pair_key(r)]) for r in rs if pair_key(r) in base]
        head = f"{exp} {tag} ({len(pairs)} of {len(rs)} runs paired with {baseline})"
        if not pairs:
            lines.append(f"{head}: no run shares attention, folds and seed with the baseline")
            continue
        for key, what in (("test_accuracy", "test"), ("test_noisy_accuracy", "noisy")):
            diffs = [r.get(key) - b.get(key) for r, b in pairs
                     if r.get(key) is not None and b.get(key) is not None]
            line = paired_difference(diffs, f"{what}: {exp} − {baseline}")
            if line is None and len(diffs) == 1:
                line = f"{what}: {exp} − {baseline} {diffs[0]:+.4f} over 1 run"
            if line:
                lines.append(f"{head} {line}")
    return lines


def collect_results(paths):
    """The runs (:class:`~audioattn_sb.results.RunResults`, ``path`` set, ``localisation``: the
    means of the run's saved attentions or None) of the results.json files under ``paths``:
    files, folders (searched recursively) or glob patterns."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            files += glob.glob(os.path.join(p, "**", RESULTS_JSON), recursive=True)
        elif any(ch in p for ch in "*?["):
            for match in glob.glob(p, recursive=True):  # folders found by the pattern too
                files += (glob.glob(os.path.join(match, "**", RESULTS_JSON), recursive=True)
                          if os.path.isdir(match) else [match])
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder of results")
    runs = []
    for f in sorted(set(files)):
        try:
            run = RunResults.load(f)
        except (OSError, ValueError) as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{f}: not a readable results.json ({err}); delete or rerun it") from err
        for key in ("test_accuracy", "folds", "attention"):
            if not run.has(key):
                raise ValueError(f"{f}: results.json lacks {key!r}; was it written by train.py?")
        run.localisation = _saved_localisation(os.path.dirname(f))
        runs.append(run)
    if not runs:
        raise ValueError(f"no results.json found under {', '.join(paths)}")
    return runs


def _median_support(locs, classes=None):
    """Median support width over the clips of every run (``supports_by_class`` of the
    localisation summaries), only the clips of ``classes`` when given; inf for an unbounded
    support (Gaussian), nan when no run has the widths."""
    widths = [math.inf if w is None else w
              for loc in locs for label, ws in (loc.get("supports_by_class") or {}).items()
              if classes is None or label in classes for w in ws]
    return statistics.median(widths) if widths else float("nan")


def _machines(runs):
    """``"CPU A ×2; CPU B ×1; not recorded ×1"``: the machines (``results.json: machine.cpu``)
    that ran ``runs``, with counts in first-seen order; ``""`` when no run records one (runs
    written before it was recorded). The same code and seed give fold accuracies a few points
    apart on different CPU models, so a row mixing machines says so.

    Example:
        >>> _machines([{"machine": {"cpu": "X"}}, {"machine": {"cpu": "X"}}, {}])
        'X ×2; not recorded ×1'
        >>> _machines([{}])
        ''
    """
    names = [as_run_results(r).machine_cpu or "not recorded" for r in runs]
    if all(n == "not recorded" for n in names):
        return ""
    return "; ".join(f"{n} ×{c}" for n, c in Counter(names).items())  # first-seen order


def _mean_std_of_every_run(values, n_runs):
    """(mean, sample std) of ``values`` when every one of ``n_runs`` runs gave one, else NaNs.

    Example:
        >>> _mean_std_of_every_run([0.5, 0.7], 2)[0], _mean_std_of_every_run([0.5], 2)
        (0.6, (nan, nan))
    """
    if not values or len(values) != n_runs:
        return float("nan"), float("nan")
    return statistics.fmean(values), _std(values)


def aggregate(runs, support_classes=None):
    """Group runs (:class:`~audioattn_sb.results.RunResults` of :func:`collect_results`, or
    results.json dicts) by (experiment, attention, epochs, what was tested: the checkpoint rule and
    the weight average) → rows of mean ± std over test folds.

    Each row: configuration, number of runs, test folds, accuracy mean/std (sample std, ddof=1),
    error mean, mean and median wall time per training epoch, the machines that ran them
    (:func:`_machines`). Two runs of the same configuration
    on the same test fold (e.g. two seeds) are both counted and flagged in ``duplicate_folds``. With the
    localisation summaries of ``localise_folds.py``: mass on the event, uniform mass, the median
    support width over all test clips and, for ``support_classes`` (e.g. transient sounds), over
    the clips of those classes.

    Example:
        >>> runs = [{"experiment_name": "e", "attention": {"tag": "discrete-softmax"},
        ...          "number_of_epochs": 2, "folds": {"test": [k]}, "test_accuracy": a,
        ...          "test_error": 1 - a, "train_epoch_seconds": [1.0]}
        ...         for k, a in [(1, 0.5), (2, 0.7)]]
        >>> row = aggregate(runs)[0]
        >>> row["accuracy_mean"], round(row["accuracy_std"], 4), row["test_folds"]
        (0.6, 0.1414, '1 2')
    """
    groups = OrderedDict()
    for r in map(as_run_results, runs):
        # runs tested on differently chosen checkpoints (test_checkpoint) or weights (a moving
        # average, average_epochs) are not averaged together
        key = (r.experiment_name, r.attention_tag, r.number_of_epochs, r.tested)
        groups.setdefault(key, []).append(r)
    rows = []
    for (exp, tag, epochs, tested), rs in groups.items():
        accs = [float(r.test_accuracy) for r in rs]
        folds = [k for r in rs for k in r.test_folds]
        epoch_s = [s for r in rs for s in r.train_epoch_seconds or []]
        dup = sorted({k for k in folds if folds.count(k) > 1})
        noisy = [float(r.test_noisy_accuracy) for r in rs if r.test_noisy_accuracy is not None]
        best = [int(r.best_epoch) for r in rs if r.best_epoch is not None]
        locs = [r.localisation for r in rs if r.localisation]
        loc_all = len(locs) == len(rs)
        # runs that averaged their weights (average_epochs > 0) tested the average; their own
        # last/selected weights were tested too (without_weight_average): both are reported
        averaged = all(r.without_weight_average for r in rs)
        own = [float(r.own("test_accuracy")) for r in rs] if averaged else []
        own_noisy = [float(r.own("test_noisy_accuracy")) for r in rs
                     if averaged and r.own("test_noisy_accuracy") is not None]
        noisy_ms, own_ms, own_noisy_ms = (_mean_std_of_every_run(v, len(rs))
                                          for v in (noisy, own, own_noisy))
        rows.append({
            "experiment": exp,
            "attention": tag,
            "epochs": epochs,
            "tested_checkpoint": tested,
            "n_runs": len(rs),
            "test_folds": " ".join(str(k) for k in sorted(folds)),
            "duplicate_folds": " ".join(str(k) for k in dup),
            "accuracy_mean": statistics.fmean(accs),
            "accuracy_std": _std(accs),
            "accuracy_min": min(accs),
            "accuracy_max": max(accs),
            "error_mean": statistics.fmean(float(r.test_error) for r in rs),
            "epoch_seconds_mean": statistics.fmean(epoch_s) if epoch_s else float("nan"),
            # robust to a run paused or suspended during one epoch (the table shows this one)
            "epoch_seconds_median": statistics.median(epoch_s) if epoch_s else float("nan"),
            # the noisy test folds (--noisy_test_folder), only when every run of the group has it
            "noisy_accuracy_mean": noisy_ms[0],
            "noisy_accuracy_std": noisy_ms[1],
            # the same with each run's own weights (only when every run averaged its weights)
            "own_accuracy_mean": own_ms[0],
            "own_accuracy_std": own_ms[1],
            "own_noisy_accuracy_mean": own_noisy_ms[0],
            "own_noisy_accuracy_std": own_noisy_ms[1],
            "best_epochs": " ".join(str(b) for b in best),
            "best_epoch_mean": statistics.fmean(best) if best else float("nan"),
            # attention mass on the labelled event (save_attentions.py --events_csv), and the
            # uniform baseline, when every run of the group has it
            "mass_in_event_mean": statistics.fmean(x["mass_in_event"] for x in locs)
            if loc_all else float("nan"),
            "mass_in_event_std": _std([x["mass_in_event"] for x in locs]) if loc_all
            else float("nan"),
            "uniform_mass_mean": statistics.fmean(x["uniform_mass"] for x in locs)
            if loc_all else float("nan"),
            "support_median": _median_support(locs) if loc_all else float("nan"),
            "support_median_classes": _median_support(locs, set(support_classes))
            if loc_all and support_classes else float("nan"),
            "n_last_epoch_best": sum(1 for r in rs if r.best_epoch is not None
                                     and r.best_epoch == r.epochs_completed),
            "machines": _machines(rs),
            "accuracies": accs,
        })
    return rows


CSV_COLUMNS = ["experiment", "attention", "epochs", "tested_checkpoint", "n_runs", "test_folds",
               "duplicate_folds",
               "accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max", "error_mean",
               "epoch_seconds_mean", "epoch_seconds_median", "noisy_accuracy_mean",
               "noisy_accuracy_std", "own_accuracy_mean", "own_accuracy_std",
               "own_noisy_accuracy_mean", "own_noisy_accuracy_std", "best_epochs",
               "best_epoch_mean", "n_last_epoch_best", "mass_in_event_mean", "mass_in_event_std",
               "uniform_mass_mean", "support_median", "support_median_classes", "machines"]


def rows_to_csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _pm(mean, std):
    return f"{mean:.3f} ± {std:.3f}" if not math.isnan(std) else f"{mean:.3f}"


def rows_to_markdown(rows):
    """The table in Markdown; the noisy-test, own-weights (runs that averaged their weights),
    localisation and machine columns only when some row has them."""
    noisy = any(not math.isnan(r.get("noisy_accuracy_mean", float("nan"))) for r in rows)
    loc = any(not math.isnan(r.get("mass_in_event_mean", float("nan"))) for r in rows)
    head = "| experiment | attention | epochs | folds | accuracy (mean ± std) | "
    head += "noisy test (mean ± std) | " if noisy else ""
    own = any(not math.isnan(r.get("own_accuracy_mean", float("nan"))) for r in rows)
    head += "own weights: accuracy (noisy) | " if own else ""
    sup = any(not math.isnan(r.get("support_median", float("nan"))) for r in rows)
    cls = any(not math.isnan(r.get("support_median_classes", float("nan"))) for r in rows)
    head += "mass in event (uniform) | " if loc else ""
    head += "median support | " if sup else ""
    head += "median support (selected classes) | " if cls else ""
    head += "best epochs | s / epoch (median) |"
    machines = any(r.get("machines") for r in rows)
    head += " machines |" if machines else ""
    lines = [head, "|---" * head.count(" | ") + "|---|"]
    # the tested checkpoint is named next to the attention when the rows differ in it
    rules = {r.get("tested_checkpoint", "min valid error") for r in rows}
    for r in rows:
        med = r.get("epoch_seconds_median", float("nan"))
        sec = "" if math.isnan(med) else f"{med:.2f}"
        att = r["attention"]
        if len(rules) > 1:
            att += f" (tested: {r.get('tested_checkpoint', 'min valid error')})"
        line = (f"| {r['experiment']} | {att} | {r['epochs']} | {r['test_folds']} | "
                f"{_pm(r['accuracy_mean'], r['accuracy_std'])} | ")
        if noisy:
            nm = r.get("noisy_accuracy_mean", float("nan"))
            line += ("– | " if math.isnan(nm) else f"{_pm(nm, r['noisy_accuracy_std'])} | ")
        if own:
            om = r.get("own_accuracy_mean", float("nan"))
            on = r.get("own_noisy_accuracy_mean", float("nan"))
            line += ("– | " if math.isnan(om) else _pm(om, r["own_accuracy_std"])
                     + ("" if math.isnan(on) else f" ({_pm(on, r['own_noisy_accuracy_std'])})")
                     + " | ")
        if loc:
            m = r.get("mass_in_event_mean", float("nan"))
            line += ("– | " if math.isnan(m) else
                     f"{_pm(m, r['mass_in_event_std'])} ({r['uniform_mass_mean']:.3f}) | ")
        for flag, key in ((sup, "support_median"), (cls, "support_median_classes")):
            if flag:
                v = r.get(key, float("nan"))
                line += "– | " if math.isnan(v) else ("∞ | " if math.isinf(v) else f"{v:.2f} | ")
        line += f"{r.get('best_epochs', '')} | {sec} |"
        line += f" {r.get('machines') or 'not recorded'} |" if machines else ""
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_table(rows, out_prefix):
    """Write ``<prefix>.csv``, ``<prefix>.md``, ``<prefix>.png`` (box plot) and
    ``<prefix>_best_epochs.png``; returns the paths."""
    paths = (out_prefix + ".csv", out_prefix + ".md", out_prefix + ".png",
             out_prefix + "_best_epochs.png")
    atomic_write_text(paths[0], rows_to_csv(rows))
    atomic_write_text(paths[1], rows_to_markdown(rows))
    box_plot(rows, paths[2])
    best_epochs_plot(rows, paths[3])
    return paths
