"""README.md's commands, as a user copies them: every script, hparams file and option a README
command names exists and is accepted (fast); the quick start (`bash scripts/demo.sh`: make
the data, train two attention variants, save, plot and browse their attentions by run folder)
runs end to end from the README's own line, then README's "Inspecting a run" block as written
on its runs (slow); the citing section names CITATION.cff's papers."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SUBPROCESS_TIMEOUT

README = REPO_ROOT / "README.md"
#: SpeechBrain's own command-line options (run_opts), accepted by train.py beside the yaml keys
SB_RUN_OPTS = {"device", "precision", "eval_precision", "data_parallel_backend",
               "distributed_launch", "distributed_backend", "find_unused_parameters",
               "jit", "compile", "debug", "noprogressbar", "log_config", "ckpt_interval_minutes",
               "ckpt_interval_steps", "grad_accumulation_factor", "optimizer_step_limit",
               "tqdm_colored_bar", "max_grad_norm", "nonfinite_patience", "skip_nonfinite_grads"}


def readme_commands(text):
    """The shell commands of README's ```bash blocks, continuation lines joined, comments and
    variable assignments dropped.

    >>> readme_commands("x\\n```bash\\nA=1\\npython a.py --x \\\\\\n   --y   # c\\n```\\n")
    [['python', 'a.py', '--x', '--y']]
    """
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and not re.fullmatch(r"\w+=.*", words[0]):
                commands.append(words)
            elif len(words) > 1:  # VAR=value command ...
                commands.append(words[1:])
    return commands


def _help(script, cache={}):
    if script not in cache:
        p = subprocess.run([sys.executable, str(REPO_ROOT / "recipes" / script), "--help"],
                           capture_output=True, text=True, cwd=REPO_ROOT,
                           timeout=SUBPROCESS_TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert p.returncode == 0, (script, p.stderr[-500:])
        cache[script] = p.stdout
    return cache[script]


def _yaml_keys(words):
    from audioattn_sb.hparams import peek_hparams

    yamls = [w for w in words if w.endswith(".yaml")]
    assert yamls, f"no hparams file in {' '.join(words)}"
    return set(peek_hparams(REPO_ROOT / yamls[0])) | SB_RUN_OPTS


def _options(words):
    return [w[2:].split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]


def test_readme_commands_name_existing_scripts_files_and_options():
    """Each `python recipes/X.py ...` line of README: X.py exists, the hparams files it names
    exist, an option before `--` is in X.py's --help (train.py: a yaml key or a SpeechBrain
    option), a `--key=value` after run_folds.py's `--` is a key of its yaml; each `bash
    scripts/X.sh` exists. A renamed option or script fails here before a user meets it."""
    commands = readme_commands(README.read_text())
    checked = 0
    for words in commands:
        if words[0] == "bash":
            script = next(w for w in words[1:] if w.endswith(".sh"))
            assert (REPO_ROOT / script).is_file(), f"README runs {script}: missing"
            continue
        if not (words[0] == "python" and words[1].startswith("recipes/")):
            continue
        script = words[1].split("/", 1)[1]
        assert (REPO_ROOT / "recipes" / script).is_file(), f"README runs recipes/{script}: missing"
        for w in words:
            if w.startswith("hparams/"):
                assert (REPO_ROOT / w).is_file(), f"README names {w}: missing"
        head, _, tail = " ".join(words).partition(" -- ")
        head, tail = head.split(), tail.split()
        if script == "train.py":
            keys = _yaml_keys(head)
            unknown = [o for o in _options(head) if o not in keys]
        else:
            usage = _help(script)
            unknown = [o for o in _options(head)
                       if not re.search(rf"--{re.escape(o)}(?![\w-])", usage)]
        if tail:
            keys = _yaml_keys(head)
            unknown += [o for o in _options(tail) if o not in keys]
        assert not unknown, f"README: {' '.join(words)}\n  options unknown to {script}: {unknown}"
        checked += 1
    assert checked >= 8, f"only {checked} README commands found: the extraction broke"


def test_readme_command_extraction_catches_a_misspelt_option(monkeypatch):
    """The check above fails on a README line with an option the script does not have."""
    text = README.read_text().replace("--attn_num_samples 10", "--attn_num_sample 10", 1)
    assert text != README.read_text()
    monkeypatch.setattr(sys.modules[__name__], "README", type("R", (), {
        "read_text": staticmethod(lambda: text)}))
    with pytest.raises(AssertionError, match="attn_num_sample"):
        test_readme_commands_name_existing_scripts_files_and_options()


@pytest.mark.slow
def test_quick_start_demo_runs_end_to_end(tmp_path):
    """README's first quick-start line, `bash scripts/demo.sh`, run as written (its install step
    reuses this environment; two epochs through the override the script documents, which also
    checks that a repeated override wins): two runs with results, the saved attention CSVs with
    the mass on the labelled event, spectrograms, the comparison plots, the HTML browser and the
    table naming both variants."""
    quick = next(w for w in readme_commands(README.read_text())
                 if w[:2] == ["bash", "scripts/demo.sh"])
    data, out = tmp_path / "data", tmp_path / "out"
    env = {**os.environ, "VENV": sys.prefix, "DEMO_DATA": str(data), "DEMO_OUT": str(out),
           "OMP_NUM_THREADS": "1"}
    p = subprocess.run([*quick, "--number_of_epochs=2"], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    exp = out / "urbansound8k_acrnn_compact"
    table = (exp / "folds_table.md").read_text()
    for tag in ("discrete-sparsemax", "continuous-biweight"):
        run = exp / tag / "test1_valid2" / "seed0"
        assert (run / "results.json").is_file()
        assert "| 2 | 1 |" in next(l for l in table.splitlines() if f"| {tag} |" in l)
        csv = (run / "saved_attentions" / f"{tag}.csv").read_text().splitlines()
        assert "mass_in_event" in csv[0] and len(csv) > 1
        assert list((run / "specs").glob("*.png"))
    assert len(list((out / "plots").glob("compare_*.png"))) == 3
    assert (out / "report.html").stat().st_size > 0
    assert str(out / "report.html") in p.stdout

    # README's "Inspecting a run" block as written, on the demo's two runs: RUN and OTHER_RUN
    # are the demo's folders, clip.wav one of its clips, `python` this interpreter; it runs
    # in a folder of its own (recipes/ linked) so that report.html and clip.png land there
    block = re.search(r"## Inspecting a run\n+```bash\n(.*?)```", README.read_text(), re.S)[1]
    cont, disc = (exp / tag / "test1_valid2" / "seed0"
                  for tag in ("continuous-biweight", "discrete-sparsemax"))
    wav = sorted((data / "audio" / "fold1").glob("*.wav"))[0]
    script = re.sub(r"^RUN=.*$", f"RUN={shlex.quote(str(cont))}", block, flags=re.M)
    assert script != block, "README's inspection block no longer sets RUN="
    script = script.replace("OTHER_RUN", shlex.quote(str(disc))).replace(
        "clip.wav", shlex.quote(str(wav)))
    work = tmp_path / "inspect"
    work.mkdir()
    (work / "recipes").symlink_to(REPO_ROOT / "recipes")
    prelude = f'set -euo pipefail\npython() {{ {shlex.quote(sys.executable)} "$@"; }}\n'
    q = subprocess.run(["bash", "-c", prelude + script], cwd=work, env=env, capture_output=True,
                       text=True, timeout=SUBPROCESS_TIMEOUT)
    assert q.returncode == 0, q.stdout[-3000:] + q.stderr[-3000:]
    assert len(list((cont / "specs").glob("*.npz"))) == 10
    rows = (cont / "saved_attentions" / "continuous-biweight.csv").read_text().splitlines()
    assert len(rows) == 1 + len(list((data / "audio" / "fold1").glob("*.wav")))
    assert list((cont / "saved_attentions" / "plots").rglob("*.png"))
    assert (work / "report.html").stat().st_size > 0 and (work / "clip.png").stat().st_size > 0
    assert wav.stem in q.stdout  # classify.py names the file it classified


def test_readme_cites_every_reference_of_citation_cff():
    """README's Citing section names each paper CITATION.cff lists (its first author and year),
    and the licence file it links exists with the licence pyproject.toml declares."""
    import yaml

    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    citing = README.read_text().split("## Citing", 1)[1].split("\n## ", 1)[0]
    for ref in cff["references"]:
        first = ref["authors"][0].get("family-names") or ref["authors"][0]["name"]
        assert first in citing and str(ref["year"]) in citing, (ref["title"], first, ref["year"])
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text()
    assert 'license = {text = "Apache-2.0"}' in (REPO_ROOT / "pyproject.toml").read_text()
    assert cff["license"] == "Apache-2.0"
