"""AtomicCheckpointer: a checkpoint folder is complete or it is not a checkpoint.

The end-to-end case (a real SIGKILL inside a save, then the same command resumes) is
``test_reliability.py::test_sigkill_inside_a_checkpoint_save_then_same_command_resumes``.
"""

import glob
import logging
import os
import re

import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer, mark_as_loader, mark_as_saver, \
    register_checkpoint_hooks

from audioattn_sb.checkpoints import FILES_KEY, AtomicCheckpointer, checkpoint_problem

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@register_checkpoint_hooks
class _Spy:
    """A recoverable that records, when it is saved, whether its folder already has CKPT.yaml."""

    def __init__(self):
        self.meta_seen = []

    @mark_as_saver
    def save(self, path):
        self.meta_seen.append(os.path.exists(os.path.join(os.path.dirname(path), "CKPT.yaml")))
        with open(path, "w") as f:
            f.write("spy")

    @mark_as_loader
    def load(self, path, end_of_epoch):
        pass


def _ckpter(tmp_path, **recoverables):
    recoverables = recoverables or {"model": torch.nn.Linear(3, 2)}
    return AtomicCheckpointer(tmp_path / "save", recoverables=recoverables)


def test_meta_is_written_after_every_recoverable_file(tmp_path):
    spy = _Spy()
    ck = _ckpter(tmp_path, model=torch.nn.Linear(3, 2), spy=spy)
    ckpt = ck.save_checkpoint(meta={"error": 0.3})
    assert spy.meta_seen == [False]
    sizes = {f: os.path.getsize(ckpt.path / f) for f in ("model.ckpt", "spy.ckpt")}
    assert ckpt.meta[FILES_KEY] == sizes
    # the meta on disk is the returned one, and no temporary file is left
    (listed,) = ck.list_checkpoints()
    assert listed.meta == ckpt.meta
    assert not glob.glob(str(tmp_path / "save" / "**" / "*.tmp"), recursive=True)
    assert not glob.glob(str(tmp_path / "save" / "**" / ".*"), recursive=True)


def test_plain_checkpointer_writes_meta_first(tmp_path):
    """The defect this module exists for (if SpeechBrain fixes it, this test says so)."""
    spy = _Spy()
    Checkpointer(tmp_path / "save", recoverables={"spy": spy}).save_checkpoint()
    assert spy.meta_seen == [True]


@pytest.mark.parametrize("damage", ["truncate", "delete", "no_meta"])
def test_incomplete_folder_is_not_a_checkpoint_and_is_removed_at_next_save(
        tmp_path, damage, caplog):
    model = torch.nn.Linear(3, 2)
    ck = _ckpter(tmp_path, model=model)
    good = ck.save_checkpoint(meta={"error": 0.5})
    bad = ck.save_checkpoint(meta={"error": 0.1})  # the better one, then damaged
    f = bad.path / "model.ckpt"
    if damage == "truncate":      # a save killed half-way through a file
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
    elif damage == "delete":      # an rmtree (checkpoint deletion) killed half-way
        f.unlink()
    else:                         # a save killed before its meta was written
        (bad.path / "CKPT.yaml").unlink()
    assert checkpoint_problem(bad.path) is not None
    with caplog.at_level(logging.WARNING):
        listed = AtomicCheckpointer(tmp_path / "save").list_checkpoints()
    assert [c.path for c in listed] == [good.path]
    if damage != "no_meta":  # a folder without meta is not even a candidate
        assert str(bad.path) in caplog.text
    # selection by the lowest error cannot pick the damaged folder
    assert ck.find_checkpoint(min_key="error").path == good.path
    newest = ck.save_checkpoint(meta={"error": 0.7})
    assert not bad.path.exists()
    assert {c.path for c in ck.list_checkpoints()} == {good.path, newest.path}


def test_complete_checkpoint_round_trips_and_keep_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    ck = _ckpter(tmp_path, model=model)
    for err in (0.4, 0.2, 0.3):
        with torch.no_grad():
            model.weight.fill_(err)
        ck.save_and_keep_only(meta={"error": err}, min_keys=["error"], num_to_keep=1)
    # SpeechBrain keeps the best and (keep_recent) the newest
    assert sorted(c.meta["error"] for c in ck.list_checkpoints()) == [0.2, 0.3]
    with torch.no_grad():
        model.weight.zero_()
    ck.recover_if_possible(min_key="error")
    assert torch.allclose(model.weight, torch.full_like(model.weight, 0.2))


def test_checkpoint_of_speechbrains_checkpointer_is_still_read(tmp_path):
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(0.25)
    Checkpointer(tmp_path / "save", recoverables={"model": model}).save_checkpoint(
        meta={"error": 0.1})
    other = torch.nn.Linear(3, 2)
    ckpt = _ckpter(tmp_path, model=other).recover_if_possible(min_key="error")
    assert ckpt is not None and FILES_KEY not in ckpt.meta
    assert torch.equal(other.weight, model.weight)


def test_unloadable_checkpoint_names_its_folder_and_what_to_do(tmp_path):
    """A checkpoint with no recorded sizes (SpeechBrain's) whose file is truncated: a clear
    error naming the folder, not EOFError from inside torch's unpickler."""
    model = torch.nn.Linear(3, 2)
    ckpt = Checkpointer(tmp_path / "save", recoverables={"model": model}).save_checkpoint()
    f = ckpt.path / "model.ckpt"
    with open(f, "r+b") as fh:
        fh.truncate(os.path.getsize(f) // 2)
    with pytest.raises(RuntimeError, match=re.escape(str(ckpt.path)) + ".*delete that folder"):
        _ckpter(tmp_path, model=model).recover_if_possible()


def test_every_yaml_uses_the_atomic_checkpointer():
    yamls = sorted(glob.glob(os.path.join(REPO, "hparams", "*.yaml")))
    assert yamls
    for y in yamls:
        lines = [ln for ln in open(y) if ln.startswith("checkpointer:")]
        assert lines == ["checkpointer: !new:audioattn_sb.checkpoints.AtomicCheckpointer\n"], y


def test_test_checkpoint_rules_pick_best_valid_or_last_end_of_epoch(tmp_path):
    """As the Brain saves: end-of-epoch checkpoints with ``error`` and ``epoch``, keeping the best
    and the newest; then an intra-epoch checkpoint (newer, no ``epoch``) as a killed run leaves."""
    from audioattn_sb.brains.base import checkpoint_rule_key

    ck = _ckpter(tmp_path)
    for epoch, err in ((1, 0.2), (2, 0.1), (3, 0.3)):
        ck.save_and_keep_only(meta={"error": err, "epoch": epoch}, min_keys=["error"])
    ck.save_checkpoint(meta={"brain_intra_epoch_ckpt": True}, end_of_epoch=False)
    key = {"min_key": "error"}
    assert ck.find_checkpoint(**checkpoint_rule_key("best_valid", key)).meta["epoch"] == 2
    assert ck.find_checkpoint(**checkpoint_rule_key("last", key)).meta["epoch"] == 3
    assert ck.find_checkpoint(**checkpoint_rule_key("last", {"max_key": "mAP"})).meta[
        "epoch"] == 3


def _two_process_saves(rank, folder, rendezvous, slow_meta, errors):
    """One of two gloo processes saving and pruning checkpoints as the Brain does in DDP; rank 0
    writes its meta files slowly (``slow_meta``), as a busy main process would."""
    import datetime
    import time

    import torch.distributed as dist

    import audioattn_sb.checkpoints as ckpts

    os.environ.update(RANK=str(rank), WORLD_SIZE="2")
    # a file rendezvous: no port picked, released, then taken again (another process could
    # take it in between)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=20))
    try:
        if rank == 0 and slow_meta:
            write = ckpts.write_meta_atomically

            def slow(fpath, meta):
                time.sleep(0.5)
                write(fpath, meta)
            ckpts.write_meta_atomically = slow
        ck = AtomicCheckpointer(folder, recoverables={"model": torch.nn.Linear(3, 2)})
        for epoch, err in enumerate((0.5, 0.4, 0.45, 0.3), start=1):
            ck.save_and_keep_only(meta={"error": err, "epoch": epoch}, min_keys=["error"])
        dist.barrier()
    except Exception as e:  # noqa: BLE001 (reported to the parent)
        errors.put(f"rank {rank}: {type(e).__name__}: {e}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_processes_see_the_same_checkpoints(tmp_path):
    """Two processes (gloo): every process lists the same checkpoints after each save, so the
    per-deletion broadcasts of SpeechBrain's delete_checkpoints match; with the meta written on
    the main process after the others had moved on, they waited in different collectives."""
    import torch.multiprocessing as mp

    rendezvous = tmp_path / "rendezvous"
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_two_process_saves,
                         args=(rank, tmp_path / "save", rendezvous, True, errors)) for rank in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.kill()
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found and all(p.exitcode == 0 for p in procs), (found, [p.exitcode for p in procs])
    kept = AtomicCheckpointer(tmp_path / "save").list_checkpoints()
    assert sorted(c.meta["epoch"] for c in kept) == [4]  # the best is also the newest
