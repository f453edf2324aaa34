"""Command-line entry points of the "look inside" scripts (the scripts in ``recipes/`` are thin).

``save_specs.py``, ``save_attentions.py`` and ``save_self_attention.py`` take the training
command's arguments (hparams file, overrides, ``--output_folder=<trained run>``, SpeechBrain run
options) plus their own options, which are taken out before SpeechBrain parses the rest.
``plot_attentions.py`` and ``plot_self_attention.py`` only read files.
Errors a user can fix are printed as one ``error:`` message (exit code 2) without a traceback
(``AUDIOATTN_TRACEBACK=1`` shows it).
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from audioattn_sb.utils import run_cli  # noqa: F401  (re-exported for the scripts)

logger = logging.getLogger(__name__)


#: what the run-folder form (``save_attentions.py RUN …``) may change: the data it reads
RUN_FORM_KEYS = ("data_folder",)


def _run_form(run_folder, rest):
    """``(None, run_opts, overrides dict with "__run_folder__")`` of ``RUN [--data_folder=DIR]
    [--device=…] [--noprogressbar]``: the run's own hyperparams.yaml rebuilds the model; another
    ``--data_folder`` (e.g. a noisy copy) gets its own default cache folder, so that its clips
    never replace the training data's cached ones."""
    import speechbrain as sb
    import yaml

    from audioattn_sb.inspection.trained_run import other_data_overrides

    saved = Path(run_folder) / "hyperparams.yaml"
    if not saved.is_file():
        raise FileNotFoundError(f"{saved}: missing, so {run_folder} is not a training run "
                                "(recipes/train.py writes hyperparams.yaml at start-up)")
    _, run_opts, overrides = sb.parse_arguments([str(saved), *rest])
    extra = yaml.safe_load(overrides) if overrides else {}
    extra = extra or {}
    bad = sorted(set(extra) - set(RUN_FORM_KEYS))
    if bad:
        raise ValueError(f"{', '.join('--' + k for k in bad)}: the run-folder form rebuilds the "
                         f"model from {saved} and takes only "
                         f"{', '.join('--' + k for k in RUN_FORM_KEYS)} (the data to read); to "
                         "inspect another configuration, train it")
    if "data_folder" in extra:
        extra = other_data_overrides(run_folder, extra["data_folder"])
    return None, run_opts, {**extra, "__run_folder__": str(run_folder)}


def parse_run_args(argv, add_options):
    """``(own options, hparams_file, run_opts, overrides)``: ``add_options(parser)`` declares the
    script's own options; everything else goes to ``speechbrain.parse_arguments``. When the
    first argument is a run folder (``RUN [--data_folder=DIR] [--device=…]``), ``hparams_file``
    is None and the run's own ``hyperparams.yaml`` rebuilds the model (:func:`_run_form`).

    Example:
        >>> ns, hp, opts, ov = parse_run_args(
        ...     ["h.yaml", "--attn_num_samples", "3", "--output_folder=/r", "--seed=1"],
        ...     lambda p: p.add_argument("--attn_num_samples", type=int, default=10))
        >>> ns.attn_num_samples, hp, ov.splitlines()
        (3, 'h.yaml', ['output_folder: /r', 'seed: 1'])
    """
    import speechbrain as sb

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    add_options(parser)
    ns, rest = parser.parse_known_args(list(argv))
    if not rest or rest[0].startswith("-"):
        raise ValueError("the first argument must be a trained run's folder (or the hparams "
                         "file of its training command, e.g. hparams/urbansound8k_acrnn.yaml, "
                         "with its overrides and --output_folder=RUN)")
    if os.path.isdir(rest[0]):
        return (ns, *_run_form(rest[0], rest[1:]))
    hparams_file, run_opts, overrides = sb.parse_arguments(rest)
    return ns, hparams_file, run_opts, overrides


def _load(hparams_file, run_opts, overrides):
    from audioattn_sb.inspection.trained_run import load_trained_run
    from audioattn_sb.hparams import check_override_keys

    if hparams_file is None:  # the run-folder form
        extra = dict(overrides)
        run_folder = extra.pop("__run_folder__")
        return load_trained_run(run_folder=run_folder, overrides=extra, run_opts=run_opts)

    check_override_keys(hparams_file, overrides)
    return load_trained_run(hparams_file=hparams_file, overrides=overrides, run_opts=run_opts)


def _under_run(run, path, default):
    """``path`` (default ``default``) resolved under the run folder when relative."""
    p = Path(path if path else default)
    return p if p.is_absolute() else Path(run.run_folder) / p


def _progress(run_opts):
    return not bool((run_opts or {}).get("noprogressbar", False))


# --------------------------------------------------------------------------- save_specs
def save_specs_main(argv=None):
    """``save_specs.py HPARAMS [overrides] --output_folder=<run> [--attn_num_samples N]
    [--attn_specs_folder DIR | --spec_dname DIR]`` (``--spec_dname``: the predecessor's name)."""
    from audioattn_sb.inspection.export import save_specs

    def options(p):
        p.add_argument("--attn_num_samples", type=int, default=10)
        p.add_argument("--attn_split", default="test")
        p.add_argument("--attn_specs_folder", "--spec_dname", dest="attn_specs_folder",
                       default=None)

    argv = sys.argv[1:] if argv is None else argv
    ns, hparams_file, run_opts, overrides = parse_run_args(argv, options)
    run = _load(hparams_file, run_opts, overrides)
    out_dir = _under_run(run, ns.attn_specs_folder, "specs")
    limit = None if ns.attn_num_samples < 0 else ns.attn_num_samples
    written = save_specs(run, out_dir, limit, split=ns.attn_split, progress=_progress(run_opts))
    kind = "model input" if run.fbank() is not None else "display log-mel (not the model input)"
    print(f"saved {len(written)} {ns.attn_split} spectrograms ({kind}; .npz + .png) -> {out_dir}")
    return written


# --------------------------------------------------------------------------- save_attentions
def save_attentions_main(argv=None):
    """``save_attentions.py HPARAMS [overrides] --output_folder=<run> [--attn_fname F.csv]
    [--attn_num_samples N] [--attn_density_points K] [--attn_split test]
    [--events_csv EVENTS.csv]`` (``--attn_num_samples``: the first N clips, −1 = all, the
    default)."""
    from audioattn_sb.inspection.export import save_attentions

    def options(p):
        p.add_argument("--attn_fname", default=None)
        p.add_argument("--attn_num_samples", type=int, default=-1)
        p.add_argument("--attn_density_points", type=int, default=200)
        p.add_argument("--attn_split", default="test")
        p.add_argument("--events_csv", default=None)

    argv = sys.argv[1:] if argv is None else argv
    ns, hparams_file, run_opts, overrides = parse_run_args(argv, options)
    if ns.attn_density_points < 4:
        raise ValueError(f"--attn_density_points must be ≥ 4, got {ns.attn_density_points}")
    events = None
    if ns.events_csv:
        from audioattn_sb.data.noisy import read_events_csv

        events = read_events_csv(ns.events_csv)
    run = _load(hparams_file, run_opts, overrides)
    tag = run.attention_config()["tag"]
    csv_path = _under_run(run, ns.attn_fname, f"saved_attentions/{tag}.csv")
    if ns.attn_num_samples == 0 or ns.attn_num_samples < -1:
        raise ValueError(f"--attn_num_samples must be a positive number of clips or -1 (all), "
                         f"got {ns.attn_num_samples}")
    res = save_attentions(run, csv_path, split=ns.attn_split,
                          density_points=ns.attn_density_points, progress=_progress(run_opts),
                          command=" ".join(["save_attentions.py", *argv]), events=events,
                          limit=None if ns.attn_num_samples < 0 else ns.attn_num_samples)
    print(f"saved the attention of {res['n_clips']} {ns.attn_split} clips ({tag}, accuracy "
          f"{res['accuracy']:.3f}) -> {res['csv']} (+ {os.path.basename(res['density_csv'])}: "
          f"{res['n_density_rows']} rows)")
    loc = res.get("localisation")
    if loc:
        print(f"localisation over {loc['n_clips_with_event']} clips with an event: mass in event "
              f"{loc['mass_in_event']:.3f} (uniform {loc['uniform_mass']:.3f}), event coverage "
              f"{loc['event_coverage']:.3f}, mu in event {loc['mu_in_event']:.3f}")
    return res


# --------------------------------------------------------------------------- localise_folds
def localise_runs(paths, noisy_folder, events_csv=None, progress=True):
    """For every finished run under ``paths`` (folders, results.json files or globs): its best
    checkpoint's attention on the run's test folds read from ``noisy_folder`` (a
    ``make_noisy_folds.py`` copy), with the localisation columns, into
    ``<run>/saved_attentions/<tag>_events.csv``. Returns ``[(run folder, localisation means)]``.
    """
    from tqdm import tqdm

    from audioattn_sb.data.noisy import EVENTS_CSV, read_events_csv
    from audioattn_sb.folds import collect_results
    from audioattn_sb.inspection.export import save_attentions
    from audioattn_sb.inspection.trained_run import load_trained_run, other_data_overrides

    events = read_events_csv(events_csv or os.path.join(noisy_folder, EVENTS_CSV))
    out = []
    for r in tqdm(collect_results(paths), desc="runs", unit="run", disable=not progress):
        folder = os.path.dirname(r.path)
        run = load_trained_run(run_folder=folder, device="cpu",
                               overrides=other_data_overrides(folder, noisy_folder))
        tag = run.attention_config()["tag"]
        res = save_attentions(run, Path(folder) / "saved_attentions" / f"{tag}_events.csv",
                              progress=False, events=events,
                              command=f"localise_folds.py (noisy folder {noisy_folder})")
        out.append((folder, res["localisation"]))
    return out


def localise_folds_main(argv=None):
    """``localise_folds.py RESULTS... --noisy_folder DIR [--events_csv F] [--out PREFIX]``."""
    from audioattn_sb.folds import aggregate, collect_results, rows_to_markdown, write_table

    p = argparse.ArgumentParser(prog="localise_folds.py",
                                description=sys.modules["__main__"].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="folders, results.json files or glob patterns")
    p.add_argument("--noisy_folder", required=True,
                   help="make_noisy_folds.py output holding the runs' test folds")
    p.add_argument("--events_csv", default=None,
                   help="default: <noisy_folder>/metadata/events.csv")
    p.add_argument("--out", default=None, help="table prefix (default: no table)")
    p.add_argument("--support_classes", nargs="+", default=None, metavar="CLASS",
                   help="also the median support width over the clips of these classes "
                        "(e.g. transient sounds: dog rooster sneezing clock_tick)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    done = localise_runs(args.results, args.noisy_folder, args.events_csv)
    print(f"localised {len(done)} runs (mean mass in event "
          f"{sum(x['mass_in_event'] for _, x in done) / max(1, len(done)):.3f})")
    if args.out:
        rows = aggregate(collect_results(args.results), support_classes=args.support_classes)
        paths = write_table(rows, args.out)
        print(rows_to_markdown(rows))
        print(f"table -> {', '.join(paths)}")
    return done


# --------------------------------------------------------------------------- plot_attentions
def _variant_name(rows, csv_path):
    from audioattn_sb.plots import attention_label

    return attention_label(rows[0]) if rows else Path(csv_path).stem


def plot_attentions_main(argv=None):
    """``plot_attentions.py CSV [--specs DIR] [--compare CSV ...] [--out DIR] [--clips ID ...]
    [--max_clips N]``."""
    from audioattn_sb import plots
    from audioattn_sb.inspection.export import load_spec

    parser = argparse.ArgumentParser(
        prog="plot_attentions.py", allow_abbrev=False,
        description="Figures from save_attentions.py CSVs: per clip the spectrogram with the "
                    "attention over it, the same clip under several attention variants "
                    "(--compare), and per-class distributions of mu and support width.")
    parser.add_argument("csv", help="summary CSV written by save_attentions.py")
    parser.add_argument("--specs", default=None,
                        help="folder of save_specs.py .npz files (default: <run>/specs of the "
                             "CSV's run, when it exists)")
    parser.add_argument("--compare", nargs="+", default=[],
                        help="CSVs of other attention variants (same clips) to compare with")
    parser.add_argument("--out", default=None,
                        help="output folder (default: <csv folder>/plots/<csv name>)")
    parser.add_argument("--clips", nargs="+", default=None, help="file_ids to plot")
    parser.add_argument("--max_clips", type=int, default=8,
                        help="clips to plot when --clips is not given (those with a spectrogram "
                             "first; default 8)")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)

    tables = _read_attention_tables([ns.csv, *ns.compare])
    names = [_variant_name(rows, path) for path, rows in tables]
    if len(set(names)) < len(names):
        names = [f"{n} [{Path(p).stem}]" for n, (p, _) in zip(names, tables)]
    specs = _specs_folder(ns.csv, ns.specs)
    out_dir = Path(ns.out) if ns.out else Path(ns.csv).parent / "plots" / Path(ns.csv).stem

    def spec_of(fid):
        path = os.path.join(specs, f"{fid}.npz") if specs else None
        return load_spec(path) if path and os.path.isfile(path) else None

    main_rows = {r["file_id"]: r for r in tables[0][1]}
    chosen = _chosen_clips(ns, tables, specs)
    written = []
    for fid in chosen:
        row, spec = main_rows[fid], spec_of(fid)
        written.append(plots.plot_clip_attention(out_dir / f"attention_{fid}.png", row, spec,
                                                 row=row))
        if len(tables) > 1:
            written.append(plots.plot_attention_comparison(
                out_dir / f"compare_{fid}.png", _clip_under_variants(fid, names, tables), spec,
                title=f"{fid} · label {row.get('label', '')}"))
    written.append(plots.plot_attention_distributions(
        out_dir / "distributions.png", [(n, rows) for n, (_, rows) in zip(names, tables)],
        _present_class_names(ns.csv, tables)))
    n_spec = sum(spec_of(f) is not None for f in chosen)
    print(f"wrote {len(written)} figures ({len(chosen)} clips, {n_spec} with a spectrogram; "
          f"{len(tables)} attention variant(s)) -> {out_dir}")
    return written


def _read_attention_tables(csv_paths):
    """``[(path, rows)]`` of save_attentions.py CSVs (with their densities), clear errors."""
    from audioattn_sb.inspection.export import read_attention_csv

    tables = []
    for path in csv_paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such attention CSV; write it with "
                                    "recipes/save_attentions.py")
        rows = read_attention_csv(path)
        if not rows:
            raise ValueError(f"{path}: no clip in the CSV")
        if "density_t" not in rows[0]:
            raise FileNotFoundError(f"{path}: its density CSV is missing; rerun "
                                    "save_attentions.py")
        tables.append((path, rows))
    return tables


def _specs_folder(csv_path, specs):
    """``--specs``, or the ``specs`` folder of the CSV's run when it exists, or None."""
    from audioattn_sb.inspection.export import meta_json_path

    if specs is not None:
        if not os.path.isdir(specs):
            raise FileNotFoundError(f"{specs}: no such specs folder; write it with "
                                    "recipes/save_specs.py")
        return specs
    try:
        with open(meta_json_path(csv_path), encoding="utf-8") as f:
            run_folder = json.load(f).get("run_folder")
        if run_folder and os.path.isdir(os.path.join(run_folder, "specs")):
            return os.path.join(run_folder, "specs")
    except (OSError, ValueError):
        pass
    return None


def _chosen_clips(ns, tables, specs):
    """``--clips`` (checked), or the first ``--max_clips`` clips every table has, those with a
    spectrogram first."""
    main_rows = {r["file_id"]: r for r in tables[0][1]}
    if ns.clips:
        missing = [c for c in ns.clips if c not in main_rows]
        if missing:
            raise ValueError(f"--clips {missing} not in {ns.csv}")
        return list(ns.clips)
    common = [fid for fid in main_rows
              if all(fid in {r["file_id"] for r in rows} for _, rows in tables[1:])]
    with_spec = [f for f in common if specs and os.path.isfile(os.path.join(specs, f"{f}.npz"))]
    return (with_spec + [f for f in common if f not in with_spec])[:max(ns.max_clips, 0)]


def _clip_under_variants(fid, names, tables):
    """``[(panel title, row)]`` of one clip in every table that has it."""
    named = []
    for name, (_, rows) in zip(names, tables):
        match = [r for r in rows if r["file_id"] == fid]
        if match:
            r = match[0]
            score = r.get("score")
            sc = f" (p={score:.2f})" if isinstance(score, float) and score == score else ""
            named.append((f"{name} → pred {r.get('pred', '')}{sc}", r))
    return named


def _present_class_names(csv_path, tables):
    """The run's class names (its JSON) that occur in the tables, in class order, or None."""
    from audioattn_sb.inspection.export import meta_json_path

    try:
        with open(meta_json_path(csv_path), encoding="utf-8") as f:
            class_names = json.load(f).get("class_names")
    except (OSError, ValueError):
        return None
    if not class_names:
        return None
    present = {r["label"] for _, rows in tables for r in rows}
    return [c for c in class_names if c in present] or None


# --------------------------------------------------------------------------- self-attention
def save_self_attention_main(argv=None):
    """``save_self_attention.py HPARAMS [overrides] --output_folder=<run> (--wav FILE
    [--textgrid TG] | --attn_num_samples N [--attn_split test]) [--attn_out_folder DIR]``."""
    from audioattn_sb.inspection.self_attention import save_run_self_attention

    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--hf_model" or a.startswith("--hf_model=") for a in argv):
        return save_pretrained_self_attention_main(argv)

    def options(p):
        p.add_argument("--wav", default=None)
        p.add_argument("--textgrid", default=None)
        p.add_argument("--word_tier", default=None)
        p.add_argument("--phone_tier", default=None)
        p.add_argument("--attn_num_samples", type=int, default=None)
        p.add_argument("--attn_split", default="test")
        p.add_argument("--attn_out_folder", default=None)

    ns, hparams_file, run_opts, overrides = parse_run_args(argv, options)
    if ns.wav is not None and ns.attn_num_samples is not None:
        raise ValueError("give either --wav FILE or --attn_num_samples N, not both")
    if ns.textgrid is not None and ns.wav is None:
        raise ValueError("--textgrid goes with --wav (the TextGrid of that audio file)")
    _require_files(ns.wav, ns.textgrid)
    run = _load(hparams_file, run_opts, overrides)
    run.check_self_attention()
    out_dir = _under_run(run, ns.attn_out_folder, "self_attention")
    n = 10 if ns.attn_num_samples is None else ns.attn_num_samples
    written = save_run_self_attention(run, out_dir, wav=ns.wav, textgrid=ns.textgrid,
                                      n_clips=n, split=ns.attn_split, word_tier=ns.word_tier,
                                      phone_tier=ns.phone_tier, progress=_progress(run_opts))
    items = "chunks" if run.multilabel else "clips"
    what = os.path.basename(ns.wav) if ns.wav else f"{len(written)} {ns.attn_split} {items}"
    print(f"saved the self-attention of {what} (N×1×M×Q×K .npz, STEVE layout) -> {out_dir}")
    return written


def _require_files(wav, textgrid):
    """``FileNotFoundError`` for a given ``--wav`` / ``--textgrid`` that does not exist."""
    for path, what in ((wav, "audio file"), (textgrid, "TextGrid file")):
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such {what}")


def save_pretrained_self_attention_main(argv):
    """``save_self_attention.py --hf_model NAME_OR_PATH --wav FILE [--textgrid TG]
    [--attn_out_folder DIR] [--float16] [--device cpu]``: a pretrained Hugging Face speech
    encoder's self-attention (:mod:`audioattn_sb.inspection.pretrained`)."""
    from audioattn_sb.inspection.pretrained import PretrainedEncoder, export_pretrained

    p = argparse.ArgumentParser(prog="save_self_attention.py --hf_model", allow_abbrev=False)
    p.add_argument("--hf_model", required=True,
                   help="a local folder (save_pretrained: model + feature extractor) or a hub "
                        "name of a wav2vec 2.0 / HuBERT / WavLM / data2vec-audio / Whisper model")
    p.add_argument("--wav", required=True, help="audio file (any rate / channels / format)")
    p.add_argument("--textgrid", default=None)
    p.add_argument("--word_tier", default=None)
    p.add_argument("--phone_tier", default=None)
    p.add_argument("--attn_out_folder", default=None,
                   help="default: results/self_attention/<model folder or name>")
    p.add_argument("--float16", action="store_true", help="store the maps in float16")
    p.add_argument("--device", default="cpu")
    ns = p.parse_args(argv)
    _require_files(ns.wav, ns.textgrid)
    out_dir = ns.attn_out_folder or os.path.join(
        "results", "self_attention", os.path.basename(os.path.normpath(ns.hf_model)))
    try:
        encoder = PretrainedEncoder(ns.hf_model, device=ns.device)
    except ImportError as err:  # the [hf] extra missing: a one-line error saying how to install
        raise ValueError(str(err)) from None
    npz, csv_path, rows = export_pretrained(encoder, ns.wav, out_dir, ns.textgrid,
                                            ns.word_tier, ns.phone_tier, ns.float16)
    print(f"saved the self-attention of {os.path.basename(ns.wav)} through {ns.hf_model} "
          f"({encoder.model_type}: {encoder.n_layers} layers × {encoder.n_heads} heads, "
          f"{encoder.spf} samples per frame) -> {npz}; summaries per layer/head -> {csv_path}")
    return npz, csv_path, rows


def plot_self_attention_main(argv=None):
    """``plot_self_attention.py NPZ|DIR ... [--textgrid TG] [--layers ...] [--heads ...]
    [--time_range S E] [--out DIR]``."""
    from audioattn_sb import plots
    from audioattn_sb.inspection.self_attention import alignments_of, load_self_attention

    parser = argparse.ArgumentParser(
        prog="plot_self_attention.py", allow_abbrev=False,
        description="Grid plots (layers × heads) of save_self_attention.py exports, time in "
                    "seconds on both axes, with word (solid) and phone (dotted) boundaries "
                    "when the export holds a TextGrid's intervals or --textgrid is given.")
    parser.add_argument("inputs", nargs="+",
                        help=".npz files of save_self_attention.py, or folders of them")
    parser.add_argument("--textgrid", default=None,
                        help="Praat TextGrid to draw (default: the intervals saved in the .npz)")
    parser.add_argument("--word_tier", default=None)
    parser.add_argument("--phone_tier", default=None)
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="layers to draw, 0-based (default all)")
    parser.add_argument("--heads", type=int, nargs="+", default=None,
                        help="heads to draw, 0-based (default all)")
    parser.add_argument("--time_range", type=float, nargs=2, default=None,
                        metavar=("START", "END"), help="seconds to show (default the clip)")
    parser.add_argument("--out", default=None,
                        help="output folder (default: next to each .npz, <name>.png)")
    ns = parser.parse_args(sys.argv[1:] if argv is None else argv)

    files = []
    for item in ns.inputs:
        if os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).glob("*.npz"))
            if not found:
                raise FileNotFoundError(f"{item}: no .npz file; write them with "
                                        "recipes/save_self_attention.py")
            files.extend(found)
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such self-attention export; write it with "
                                    "recipes/save_self_attention.py")
    override = None
    if ns.textgrid is not None:
        from audioattn_sb.textgrid import read_textgrid, words_and_phones

        override = words_and_phones(read_textgrid(ns.textgrid), ns.word_tier, ns.phone_tier)
    written = []
    for path in files:
        data = load_self_attention(path)
        if "attention" not in data or "spf" not in data:
            raise ValueError(f"{path}: not a save_self_attention.py export (no attention/spf)")
        words, phones = override if override is not None else alignments_of(data)
        att = data["attention"]
        fid = str(data.get("file_id", Path(path).stem))
        title = f"{fid} · {att.shape[0]} layers × {att.shape[2]} heads"
        if "max_activation" in data:
            title += f" · self-attention {data['max_activation']}"
        if str(data.get("pred", "")):
            title += f" · pred {data['pred']}"
        folder = Path(ns.out) if ns.out else Path(path).parent
        written.append(plots.plot_self_attention_grid(
            folder / f"{Path(path).stem}.png", att, int(data["spf"]),
            int(data.get("sample_rate", 16000)), words=words, phones=phones, layers=ns.layers,
            heads=ns.heads, time_range=ns.time_range, title=title))
    print(f"wrote {len(written)} self-attention grid(s) -> "
          f"{ns.out or os.path.dirname(os.path.abspath(files[0]))}")
    return written


# --------------------------------------------------------------------------- browse_attentions
def browse_attentions_main(argv=None):
    """``browse_attentions.py RUN_OR_CSV ... [--out report.html] [--max_clips 80] [--title T]``
    (:mod:`audioattn_sb.inspection.browser`)."""
    from audioattn_sb.inspection.browser import write_page

    p = argparse.ArgumentParser(prog="browse_attentions.py", allow_abbrev=False,
                                description="One self-contained HTML page over the attention "
                                            "CSVs, spectrograms and self-attention of runs.")
    p.add_argument("inputs", nargs="+", help="attention CSVs or run folders")
    p.add_argument("--out", default="attention_browser.html")
    p.add_argument("--max_clips", type=int, default=80)
    p.add_argument("--title", default="attention browser")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    path, size, n_clips, variants = write_page(a.inputs, a.out, a.max_clips, a.title)
    print(f"{path}: {n_clips} clips × {len(variants)} variants ({', '.join(variants)}), "
          f"{size / 2 ** 20:.1f} MB")
    return path


__all__ = ["browse_attentions_main", "parse_run_args", "plot_attentions_main",
           "plot_self_attention_main", "run_cli", "save_attentions_main",
           "save_pretrained_self_attention_main", "save_self_attention_main", "save_specs_main"]
