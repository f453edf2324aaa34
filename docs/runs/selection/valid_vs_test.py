"""Would the validation folds have chosen the same configurations as the test folds?

For every configuration in docs/runs with five seed-0 runs of discrete softmax pooling (test fold
k, validation fold k mod 5 + 1), prints the mean last-epoch validation accuracy (the weights the
run validated: averaged where average_epochs > 0) next to the mean test accuracy (own weights),
sorted by validation, and the Spearman correlation of the two rankings.

    python docs/runs/selection/valid_vs_test.py
"""
import os
import statistics

from scipy.stats import spearmanr

from audioattn_sb.results import RunResults

RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

rows = []
for exp in sorted(os.listdir(RUNS)):
    paths = [os.path.join(RUNS, exp, "discrete-softmax", f"test{k}_valid{k % 5 + 1}", "seed0",
                          "results.json") for k in range(1, 6)]
    if not all(os.path.exists(p) for p in paths):
        continue
    runs = [RunResults.load(p) for p in paths]
    valid = statistics.fmean(1 - r.get("valid_error_last_epoch") for r in runs)
    test = statistics.fmean(r.own("test_accuracy") for r in runs)
    rows.append((exp, valid, test))
print("| configuration | valid (mean of 5) | test, own (mean of 5) |\n|---|---|---|")
for exp, valid, test in sorted(rows, key=lambda r: -r[1]):
    print(f"| {exp} | {valid:.3f} | {test:.3f} |")
rho = spearmanr([r[1] for r in rows], [r[2] for r in rows])
print(f"\nSpearman rank correlation over {len(rows)} configurations: {rho.statistic:.2f} "
      f"(p {rho.pvalue:.1g})")
