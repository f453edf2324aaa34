"""The training process's CPU memory settings (audioattn_sb.runtime, recipes/train.py)."""

import json
import os
import re
import subprocess
import sys

import pytest

from audioattn_sb import runtime
from conftest import REPO_ROOT

#: a fresh interpreter that records THP_MEM_ALLOC_ENABLE at the moment torch is first imported,
#: then runs recipes/train.py as a script on a yaml that does not exist (it stops after imports)
_HOOKED_TRAIN = r"""
import importlib.abc, json, os, runpy, sys
seen = {}
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" and "thp" not in seen:
            seen["thp"] = os.environ.get("THP_MEM_ALLOC_ENABLE")
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["recipes/train.py", "no_such_hparams.yaml"]
try:
    runpy.run_path("recipes/train.py", run_name="__main__")
except BaseException:
    pass
print("SEEN " + json.dumps(seen))
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUDIOATTN_CPU_ALLOCATOR", "THP_MEM_ALLOC_ENABLE")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def test_tune_sets_both_thresholds_and_huge_pages():
    calls, env = [], {}
    info = runtime.tune_cpu_allocator(env, lambda p, v: calls.append((p, v)) or 1)
    assert env["THP_MEM_ALLOC_ENABLE"] == "1"
    assert calls == [(runtime.M_MMAP_THRESHOLD, 32 * 2**20), (runtime.M_TRIM_THRESHOLD, 2**30)]
    assert info["tuned"] and info["mallopt"] is True and info["thp"] == "1"
    # torch is imported in this test process: the report says PyTorch may have read it already
    assert info["thp_before_torch"] is False
    assert "set after torch was imported" in runtime.describe(info)


def test_tune_keeps_the_users_value_and_reports_a_refusal():
    env = {"THP_MEM_ALLOC_ENABLE": "0"}
    info = runtime.tune_cpu_allocator(env, lambda p, v: 0)
    assert env["THP_MEM_ALLOC_ENABLE"] == "0" and info["thp"] == "0"
    assert info["mallopt"] is False
    assert "glibc refused mallopt" in runtime.describe(info)


@pytest.mark.parametrize("value", ["default", " Default "])
def test_opt_out_changes_nothing(value):
    calls, env = [], {runtime.OPT_OUT: value}
    info = runtime.tune_cpu_allocator(env, lambda p, v: calls.append((p, v)) or 1)
    assert calls == [] and "THP_MEM_ALLOC_ENABLE" not in env
    assert info["tuned"] is False
    assert runtime.describe(info).endswith("(AUDIOATTN_CPU_ALLOCATOR=default)")


#: a child process that mallocs 16 MiB and prints how many mmapped blocks glibc added (mallinfo2)
_MMAP_BLOCKS = r"""
import ctypes, ctypes.util, sys
from audioattn_sb import runtime
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    runtime.tune_cpu_allocator()
before = libc.mallinfo2().hblks
block = libc.malloc(16 * 2**20)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(runtime._glibc_mallopt() is None or not hasattr(
    __import__("ctypes").CDLL(None), "mallinfo2"), reason="mallopt and mallinfo2 are glibc's")
def test_glibc_takes_a_16_mib_block_from_the_heap_once_tuned():
    # glibc's mallopt answers 1 even for a parameter it ignores: check what it does instead,
    # in child processes (this test process keeps its own settings)
    added = {}
    for setting in ("default", "tuned"):
        p = subprocess.run([sys.executable, "-c", _MMAP_BLOCKS, setting], capture_output=True,
                           text=True, cwd=REPO_ROOT, env=_clean_env(PYTHONPATH=str(REPO_ROOT)),
                           check=True)
        added[setting] = int(p.stdout.split()[-1])
    assert added == {"default": 1, "tuned": 0}


@pytest.mark.parametrize("opt_out, expected", [(None, "1"), ("default", None)])
def test_train_script_sets_huge_pages_before_torch_is_imported(opt_out, expected):
    extra = {runtime.OPT_OUT: opt_out} if opt_out else {}
    p = subprocess.run([sys.executable, "-c", _HOOKED_TRAIN], capture_output=True, text=True,
                       cwd=REPO_ROOT, env=_clean_env(PYTHONPATH=str(REPO_ROOT), **extra))
    seen = json.loads(re.search(r"^SEEN (.*)$", p.stdout, re.M).group(1))
    assert "thp" in seen, f"torch was never imported:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert seen["thp"] == expected


@pytest.mark.slow
def test_settings_do_not_change_a_training_run(demo_us8k, tmp_path):
    """Two runs of the compact Transformer, defaults and tuned: identical train logs (epoch
    times removed) and results; a run that read uninitialised memory would differ."""
    logs, accuracies = {}, {}
    for setting in ("default", "tuned"):
        out = tmp_path / setting
        extra = {runtime.OPT_OUT: "default"} if setting == "default" else {}
        cmd = [sys.executable, str(REPO_ROOT / "recipes" / "train.py"),
               str(REPO_ROOT / "hparams" / "urbansound8k_transformer_compact.yaml"),
               f"--data_folder={demo_us8k}", f"--cache_folder={tmp_path / 'cache'}",
               f"--output_folder={out}", "--train_fold_nums=[3, 4]", "--valid_fold_nums=[2]",
               "--test_fold_nums=[1]", "--number_of_epochs=2", "--warmup_epochs=1", "--batch_size=8",
               "--noprogressbar"]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT,
                           env=_clean_env(**extra))
        assert p.returncode == 0, p.stderr[-3000:]
        text = (out / "train_log.txt").read_text(encoding="utf-8")
        logs[setting] = re.sub(r"epoch_seconds: [0-9.e+-]+", "", text)
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        accuracies[setting] = (results["test_accuracy"], results["test_loss"],
                               results["test_confusion_matrix"])
        log_txt = (out / "log.txt").read_text(encoding="utf-8")
        assert ("CPU allocator: defaults" in log_txt) == (setting == "default")
        assert ("CPU allocator: tuned" in log_txt) == (setting == "tuned")
    assert logs["default"] == logs["tuned"]
    assert accuracies["default"] == accuracies["tuned"]
