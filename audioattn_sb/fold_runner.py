"""Logic of ``recipes/run_folds.py``: every test fold × attention variant, then the table.

Each run is a separate ``recipes/train.py`` process (fresh seed state and memory per run).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from audioattn_sb.folds import aggregate, collect_results, fold_split, parse_variant, write_table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(REPO, "recipes", "train.py")


def build_commands(hparams, data_folder, num_folds, folds, variants, extra, python=sys.executable,
                   teacher_experiment=None):
    """Commands and output folders for each (fold, variant), in run order. With
    ``teacher_experiment`` (a run_folds experiment folder, or a list of them: an ensemble of
    teachers), each command gets ``--teacher=`` the run of that experiment (``--teacher=[A,
    B]``: of each) with the same test and validation folds
    (:func:`audioattn_sb.distill.find_teacher_run`; ValueError when a fold has none).

    Example:
        >>> cmds = build_commands("hparams/urbansound8k_acrnn.yaml", "d", 5, [2],
        ...                       ["discrete:sparsemax"], [])
        >>> cmds[0]["args"][3:6]
        ['--train_fold_nums=[1, 4, 5]', '--valid_fold_nums=[3]', '--test_fold_nums=[2]']
        >>> cmds[0]["output_folder"]
        'results/urbansound8k_acrnn/discrete-sparsemax/test2_valid3/seed0'
    """
    from speechbrain.utils.run_opts import RunOptions

    from audioattn_sb.hparams import default_output_folder, peek_hparams

    if any(a.startswith("--output_folder") for a in extra):
        raise ValueError("--output_folder cannot be shared by all runs; use --results_root")
    out = []
    for k in folds:
        train, valid, test = fold_split(k, num_folds)
        for spec in variants:
            domain, act, alpha = parse_variant(spec)
            args = [
                python, TRAIN, hparams,
                f"--train_fold_nums={train}", f"--valid_fold_nums={valid}",
                f"--test_fold_nums={test}", f"--data_folder={data_folder}",
                f"--attn_domain={domain}", f"--attn_max_activation={act}",
            ]
            if alpha is not None:
                args.append(f"--attn_alpha={alpha}")
            if teacher_experiment:
                args.append(f"--teacher={_fold_teachers(teacher_experiment, test, valid)}")
            args += list(extra)
            _, _, overrides = RunOptions.from_command_line_args(args[2:])
            values = peek_hparams(hparams, overrides)
            out.append({"fold": k, "variant": spec, "args": args,
                        "output_folder": default_output_folder(values)})
    return out


def _fold_teachers(experiments, test, valid):
    """The ``--teacher`` value of one fold: the matching run of one teacher experiment, or the
    list of the matching runs of several (an ensemble)."""
    from audioattn_sb.distill import find_teacher_run

    if isinstance(experiments, (str, os.PathLike)):
        return find_teacher_run(experiments, test, valid)
    runs = [find_teacher_run(e, test, valid) for e in experiments]
    return runs[0] if len(runs) == 1 else json.dumps(runs)  # a YAML flow list, paths quoted


def child_env(jobs, environ=None, cpus=None):
    """Environment of the training processes: with several runs at once, each gets
    ``cpus // jobs`` intra-op threads (``OMP_NUM_THREADS``), unless the user set it. Without
    this, every process starts one thread per core and on a small machine they spin against
    each other (measured on 2 cores: 10× slower per run).

    Example:
        >>> child_env(2, {}, cpus=2)["OMP_NUM_THREADS"], child_env(1, {}, cpus=2).get("OMP_NUM_THREADS")
        ('1', None)
        >>> child_env(4, {"OMP_NUM_THREADS": "3"}, cpus=2)["OMP_NUM_THREADS"]
        '3'
    """
    env = dict(os.environ if environ is None else environ)
    cpus = cpus or os.cpu_count() or 1
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, cpus // jobs))
    return env


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        description=sys.modules["__main__"].__doc__ or __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("hparams")
    p.add_argument("--data_folder", required=True)
    p.add_argument("--num_folds", type=int, default=10)
    p.add_argument("--folds", type=int, nargs="+", help="test folds to run (default: all)")
    p.add_argument("--variants", nargs="+", default=["discrete:softmax"],
                   help="domain:max_activation[:alpha] ... (default: discrete:softmax)")
    p.add_argument("--results_root", default="results")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each its own process)")
    p.add_argument("--dry_run", action="store_true", help="print the commands only")
    p.add_argument("--teacher_experiment", default=None, nargs="+",
                   help="distil from this experiment's run of the same split (--teacher); "
                        "several: from the ensemble of their runs (the mean of probabilities)")
    args = p.parse_args(argv)
    extra = extra + [f"--results_root={args.results_root}"]
    folds = args.folds or list(range(1, args.num_folds + 1))
    try:
        cmds = build_commands(args.hparams, args.data_folder, args.num_folds, folds,
                              args.variants, extra, teacher_experiment=args.teacher_experiment)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    todo = [c for c in cmds if not os.path.exists(os.path.join(c["output_folder"], "results.json"))]
    print(f"{len(cmds)} runs ({len(folds)} folds × {len(args.variants)} variants); "
          f"{len(cmds) - len(todo)} already done, {len(todo)} to run")
    if args.dry_run:
        for c in todo:
            print(" ".join(repr(a) if " " in a else a for a in c["args"]))
        return 0
    from tqdm import tqdm

    env = child_env(args.jobs)
    failed = []
    running = []
    bar = tqdm(total=len(todo), desc="runs", unit="run")
    queue = list(todo)
    while queue or running:
        while queue and len(running) < max(1, args.jobs):
            c = queue.pop(0)
            os.makedirs(c["output_folder"], exist_ok=True)
            log = open(os.path.join(c["output_folder"], "run_folds_stdout.txt"), "w")
            running.append((c, subprocess.Popen(c["args"], stdout=log, stderr=subprocess.STDOUT,
                                                env=env), log))
        for item in list(running):
            c, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                bar.update(1)
                if proc.returncode != 0:
                    failed.append(c)
                    tqdm.write(f"FAILED (exit {proc.returncode}): fold {c['fold']} {c['variant']}; "
                               f"see {c['output_folder']}/run_folds_stdout.txt")
        time.sleep(0.2)
    bar.close()
    done = [os.path.join(c["output_folder"], "results.json") for c in cmds]
    done = [d for d in done if os.path.exists(d)]
    print(f"runs: {len(cmds)} total, {len(todo) - len(failed)} ran now, {len(failed)} failed, "
          f"{len(done)} with results")
    if done:
        rows = aggregate(collect_results(done))
        exp_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(done[0]))))
        paths = write_table(rows, os.path.join(exp_root, "folds_table"))
        print(f"table: {', '.join(paths)}")
    return 1 if failed else 0
