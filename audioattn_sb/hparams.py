"""Reading an experiment's hparams without building it, and the command line around it: plain
values after overrides (:func:`peek_hparams`, :func:`resolved_values`), unknown overrides
(:func:`check_override_keys`), the default output folder, and the checkpoint interval given on
the command line. Shared by the training recipe, the fold runner and the inspection scripts.
"""

import logging

import yaml

from audioattn_sb.attention import attention_tag

logger = logging.getLogger(__name__)


class PeekLoader(yaml.SafeLoader):
    """A YAML loader that reads plain values and ignores HyperPyYAML tags (``!new:`` …)."""


PeekLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def peek_hparams(hparams_file, overrides=""):
    """Plain (untagged) values of an hparams file after overrides, without building anything.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        >>> _ = f.write("seed: 0\\nmodel: !new:torch.nn.Linear [2, 2]\\n"); f.close()
        >>> peek_hparams(f.name, "seed: 3")
        {'seed': 3, 'model': None}
    """
    with open(hparams_file, encoding="utf-8") as fin:
        values = yaml.load(fin, Loader=PeekLoader) or {}
    if overrides:
        extra = yaml.load(overrides, Loader=PeekLoader) if isinstance(overrides, str) else overrides
        values.update(extra or {})
    return values


def resolved_values(hparams_file, overrides=""):
    """Plain values of an hparams file after overrides, with ``!ref`` references resolved
    (``attn_pool_max_activation: !ref <attn_max_activation>`` gives the mapping's name, not None)
    and nothing built (other tags give None, as :func:`peek_hparams`)."""
    from hyperpyyaml import resolve_references

    with open(hparams_file, encoding="utf-8") as fin:
        text = resolve_references(fin, overrides or None).getvalue()
    return yaml.load(text, Loader=PeekLoader) or {}


def last_override_wins(overrides):
    """SpeechBrain's overrides string with each key kept once, at its last value: a key given
    twice on the command line (``scripts/demo.sh --number_of_epochs=12`` after the script's own
    ``--number_of_epochs=8``) means the later one, as in argparse, instead of HyperPyYAML's
    duplicate-key error. An entry is a top-level ``key: value`` line with its indented
    continuation lines.

    Example:
        >>> last_override_wins("number_of_epochs: 8\\nseed: 3\\nnumber_of_epochs: 12")
        'seed: 3\\nnumber_of_epochs: 12'
        >>> last_override_wins("")
        ''
    """
    if not overrides:
        return overrides
    entries = []
    for line in overrides.split("\n"):
        if entries and (not line.strip() or line[:1].isspace()):
            entries[-1].append(line)
        else:
            entries.append([line])
    last = {}
    for entry in entries:
        key = entry[0].split(":", 1)[0].strip()
        last.pop(key, None)
        last[key] = "\n".join(entry)
    return "\n".join(last.values())


def check_override_keys(hparams_file, overrides):
    """Raise ``ValueError`` naming the first override that is not a key of ``hparams_file``,
    with the closest valid keys (difflib), instead of HyperPyYAML's traceback listing every key.
    Keys inside a mapping (``--dataloader_options={num_workers: 2}``) may be new, as in
    HyperPyYAML; the modules that take them check their names (e.g. ``attn_continuous``).

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        >>> _ = f.write("number_of_epochs: 2\\nseed: 0\\nopts: {lr: 1}\\n"); f.close()
        >>> check_override_keys(f.name, "seed: 3\\nopts: {lr: 2}")
        >>> check_override_keys(f.name, "number_of_epoch: 5")
        Traceback (most recent call last):
        ...
        ValueError: unknown override --number_of_epoch: not a key of ...; did you mean --number_of_epochs?
    """
    from audioattn_sb.utils import did_you_mean

    if not overrides:
        return
    given = yaml.load(overrides, Loader=PeekLoader) if isinstance(overrides, str) else overrides
    known = peek_hparams(hparams_file)
    for key in given or {}:
        if key not in known:
            hint = did_you_mean(key, known, prefix="--").strip() or \
                f"see the keys of {hparams_file} for the valid ones"
            raise ValueError(f"unknown override --{key}: not a key of {hparams_file}; {hint}")


def command_line_checkpoint_interval(run_opts):
    """A ``--ckpt_interval_steps`` or ``--ckpt_interval_minutes`` given on the command line
    replaces the yaml's interval of the other kind (SpeechBrain would stop with "mutually
    exclusive" because the yamls set ``ckpt_interval_minutes``). Both given: SpeechBrain's error.
    Returns the (new) run options.

    Example:
        >>> import speechbrain as sb
        >>> opts = sb.parse_arguments(["h.yaml", "--ckpt_interval_steps=3"])[1]
        >>> opts = command_line_checkpoint_interval(opts)
        >>> opts.ckpt_interval_steps, opts.ckpt_interval_minutes, "ckpt_interval_minutes" in opts.overridden_args
        (3, 0, True)
    """
    import dataclasses

    given = getattr(run_opts, "overridden_args", None)
    if given is None:
        return run_opts
    for chosen, other in (("ckpt_interval_steps", "ckpt_interval_minutes"),
                          ("ckpt_interval_minutes", "ckpt_interval_steps")):
        if chosen in given and other not in given and float(getattr(run_opts, chosen)) > 0:
            logger.info("--%s on the command line: the yaml's %s is not used", chosen, other)
            return dataclasses.replace(run_opts, **{other: 0, "overridden_args": given | {other}})
    return run_opts


def _fold_str(folds):
    return "-".join(str(int(f)) for f in folds)


def default_output_folder(values):
    """``results/<experiment>/<attention>/test<k>_valid<j>/seed<s>`` from hparams values.

    Example:
        >>> default_output_folder({"experiment_name": "us8k_acrnn", "attn_domain": "discrete",
        ...     "attn_max_activation": "softmax", "test_fold_nums": [1], "valid_fold_nums": [2],
        ...     "seed": 0})
        'results/us8k_acrnn/discrete-softmax/test1_valid2/seed0'
    """
    tag = attention_tag(values["attn_domain"], values["attn_max_activation"],
                        values.get("attn_alpha"))
    folds = ""
    if values.get("test_fold_nums") is not None:
        folds = f"test{_fold_str(values['test_fold_nums'])}"
        if values.get("valid_fold_nums") is not None:
            folds += f"_valid{_fold_str(values['valid_fold_nums'])}"
        folds += "/"
    root = values.get("results_root", "results")
    return f"{root}/{values['experiment_name']}/{tag}/{folds}seed{values['seed']}"


__all__ = ["PeekLoader", "check_override_keys", "command_line_checkpoint_interval",
           "default_output_folder", "peek_hparams", "resolved_values"]
