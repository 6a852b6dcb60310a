"""The training engine: CSV schemas, augmentation semantics, determinism, resume."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as F

from repro.engine.data import load
from repro.engine.train import (
    CHECKPOINT_KEYS,
    EPOCH_COLUMNS,
    STEP_COLUMNS,
    TIME_COLUMNS,
    DeviceData,
    RunConfig,
    fit,
    fresh_state,
    read_checkpoint,
    train_run,
)
from repro.errors import UserError
from repro.plan.dataset import MEAN, STD
from repro.plan.settings import ModelSpec

TINY = ModelSpec(widths=(8, 8, 16, 16, 32, 32), hidden=32)
OUTPUTS = ("epochs.csv", "steps.csv", "epoch_times.csv", "confusion.csv", "model.pt")
# per-image predictions of the last epoch and the confusion counts of every epoch
NEW_OUTPUTS = ("predictions.csv", "confusion_by_epoch.csv")


def tiny_run(**kw) -> RunConfig:
    # fp32 named: the schema's default (auto) would train bf16 on a CPU with AMX
    base = {"lr": 0.01, "epochs": 2, "batch_size": 64, "precision": "fp32", "model": TINY}
    return RunConfig(**{**base, **kw})


def test_outputs_and_schemas(tiny_cache, tmp_path):
    m = train_run(tiny_run(), tiny_cache, tmp_path)
    n_train, n_test = 300, 100
    steps = math.ceil(n_train / 64)  # the last partial batch is kept, as in the seed
    assert m["steps_per_epoch"] == steps == 5 and m["test_steps_per_epoch"] == 1
    lines = lambda f: (tmp_path / f).read_text().splitlines()  # noqa: E731
    assert lines("epochs.csv")[0].split(",") == EPOCH_COLUMNS and len(lines("epochs.csv")) == 3
    assert lines("steps.csv")[0].split(",") == STEP_COLUMNS
    assert len(lines("steps.csv")) == 1 + 2 * steps
    assert lines("epoch_times.csv")[0].split(",") == TIME_COLUMNS
    conf = np.array([r.split(",")[1:] for r in lines("confusion.csv")[1:]], dtype=int)
    assert conf.shape == (10, 10) and conf.sum() == n_test and (conf.sum(1) == 10).all()
    assert m["final_test_acc"] == pytest.approx(np.trace(conf) / n_test)
    assert set(m) >= {"best_test_acc", "device_name", "versions", "train_seconds"}
    preds = lines("predictions.csv")
    assert preds[0].split(",")[:3] == ["index", "label", "pred"] and len(preds) == 1 + n_test
    rows = np.array([r.split(",") for r in preds[1:]], dtype=float)
    assert np.allclose(rows[:, 3:].sum(1), 1, atol=1e-3)  # class probabilities
    assert (rows[:, 2] == rows[:, 3:].argmax(1)).all()
    assert np.mean(rows[:, 1] == rows[:, 2]) == pytest.approx(m["final_test_acc"])
    by_epoch = np.array([r.split(",") for r in lines("confusion_by_epoch.csv")[1:]], dtype=int)
    assert by_epoch.shape == (2, 101) and (by_epoch[-1, 1:] == conf.flatten()).all()


def test_device_augmentation_matches_torchvision(tiny_cache):
    """Crop offsets and flips give exactly torchvision's RandomCrop(32, padding=4) +
    RandomHorizontalFlip output for the same offset and flip decision."""
    ds = load(tiny_cache)
    dd = DeviceData(ds, torch.device("cpu"))
    idx = torch.tensor([0, 5, 17, 299])
    dy, dx = torch.tensor([0, 8, 3, 4]), torch.tensor([8, 0, 5, 4])
    flip = torch.tensor([False, True, True, False])
    x, y = dd.batch(idx, dy, dx, flip)
    assert x.is_contiguous(memory_format=torch.channels_last)
    for k in range(4):
        img = torch.from_numpy(ds.x_train[idx[k]]).permute(2, 0, 1).float() / 255
        ref = F.crop(F.pad(img, [4]), int(dy[k]), int(dx[k]), 32, 32)
        if flip[k]:
            ref = F.hflip(ref)
        ref = F.normalize(ref, MEAN, STD)
        assert torch.allclose(x[k], ref, atol=1e-5)
        assert y[k] == int(ds.y_train[idx[k]])


def test_epoch_plan_distribution(tiny_cache):
    dd = DeviceData(load(tiny_cache), torch.device("cpu"))
    perm, dy, dx, flip = dd.epoch_plan(torch.Generator().manual_seed(0))
    assert sorted(perm.tolist()) == list(range(300))
    assert dy.min() == 0 and dy.max() == 8 and dx.min() == 0 and dx.max() == 8
    assert 0.35 < flip.float().mean() < 0.65


def test_fit_returns_the_history_and_writes_nothing(tiny_cache, tmp_path, monkeypatch):
    """The epoch loop alone: every epoch in the history, ``after_epoch`` called once the
    epoch is recorded, no file written (the caller's callback does that)."""
    monkeypatch.chdir(tmp_path)
    rc = tiny_run(batch_size=100)
    dd = DeviceData(load(tiny_cache), torch.device("cpu"))
    state = fresh_state(rc, dd.device)
    seen = []
    history = fit(rc, dd, state, after_epoch=lambda s: seen.append(s.history["epoch"]))
    assert history is state.history and seen == [1, 2] and history["epoch"] == 2
    assert [row[0] for row in history["epochs"]] == [1, 2] and len(history["times"]) == 2
    assert len(history["steps"]) == 2 * 3 and history["steps"][0][4] == rc.lr
    assert len(history["confusions"]) == 2 and tuple(history["probs"].shape) == (100, 10)
    assert history["elapsed"] == pytest.approx(sum(t[1] for t in history["times"]))
    assert fit(rc, dd, state) is history and history["epoch"] == 2  # nothing left to do
    assert not list(tmp_path.iterdir())


def test_cpu_runs_are_byte_identical(tiny_cache, tmp_path):
    train_run(tiny_run(seed=3), tiny_cache, tmp_path / "a")
    train_run(tiny_run(seed=3), tiny_cache, tmp_path / "b")
    train_run(tiny_run(seed=4), tiny_cache, tmp_path / "c")
    for f in ("epochs.csv", "steps.csv", "confusion.csv", "model.pt", *NEW_OUTPUTS):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "steps.csv").read_bytes() != (
        tmp_path / "c" / "steps.csv"
    ).read_bytes()


def _train_cmd(cache: Path, out: Path, ckpt: Path, epochs: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "repro",
        "train",
        "--device",
        "cpu",
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--widths",
        "8,8,16,16,32,32",
        "--hidden",
        "32",
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--threads",
        "1",
    ]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_byte_identical(tiny_cache, tmp_path, sig):
    """Kill a real training process mid-way through epoch 2 (after the epoch-1
    checkpoint), rerun it, and get the same bytes as an uninterrupted run."""
    epochs = 3
    ref = tmp_path / "ref"
    subprocess.run(
        _train_cmd(tiny_cache, ref, tmp_path / "ref.pt", epochs), check=True, capture_output=True
    )
    out, ckpt = tmp_path / "run", tmp_path / "ck" / "run.pt"
    proc = subprocess.Popen(
        _train_cmd(tiny_cache, out, ckpt, epochs), stderr=subprocess.PIPE, text=True
    )
    _wait_for(ckpt, proc)
    time.sleep(0.3)  # well inside epoch 2 (an epoch takes seconds)
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    stderr = proc.stderr.read()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and "checkpoint after epoch" in stderr, stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert ckpt.exists() and not (out / "metrics.json").exists()
    assert not list(ckpt.parent.glob("*.tmp"))
    resumed = subprocess.run(
        _train_cmd(tiny_cache, out, ckpt, epochs), capture_output=True, text=True, check=True
    )
    assert "resumed from" in resumed.stderr
    for f in OUTPUTS[:2] + ("confusion.csv", "model.pt"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f
    assert not ckpt.exists(), "the checkpoint is removed once the run is complete"


def test_checkpoint_of_other_config_is_not_resumed(tiny_cache, tmp_path, capsys):
    ck = tmp_path / "ck.pt"
    torch.save({**dict.fromkeys(CHECKPOINT_KEYS), "fingerprint": "a-different-config"}, ck)
    train_run(tiny_run(epochs=1), tiny_cache, tmp_path / "b", checkpoint=ck)
    assert "different configuration" in capsys.readouterr().err
    train_run(tiny_run(epochs=1), tiny_cache, tmp_path / "a")
    assert (tmp_path / "a/epochs.csv").read_bytes() == (tmp_path / "b/epochs.csv").read_bytes()


def test_full_disk_fails_clearly_and_keeps_earlier_results(tiny_cache, tmp_path):
    """Train into a 96 KiB file system that already holds a finished result: the run
    stops with one line naming the file, and the earlier result is untouched."""
    disk = tmp_path / "disk"
    disk.mkdir()
    earlier = "epoch,train_loss\n1,2.0\n"
    script = (
        f"mount -t tmpfs -o size=96k tmpfs {disk} && mkdir {disk}/earlier && "
        f"printf '{earlier}' > {disk}/earlier/epochs.csv && "
        f"{' '.join(_train_cmd(tiny_cache, disk / 'new', disk / 'ck.pt', 2))}; rc=$?; "
        f"cat {disk}/earlier/epochs.csv; ls -a {disk}; exit $rc"
    )
    ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    res = subprocess.run([*ns, "sh", "-c", script], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], res.stderr
    assert f"{disk}/ck.pt" in errors[0]
    assert res.stdout.startswith(earlier)
    assert ".tmp" not in res.stdout  # no half-written file left


class _Payload:
    """Unpickling this runs code: what a crafted checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_runs_no_code(tiny_cache, tmp_path, capsys):
    marker = tmp_path / "pwned"
    ck = tmp_path / "ck.pt"
    torch.save({"fingerprint": tiny_run(epochs=1).fingerprint(), "x": _Payload(marker)}, ck)
    train_run(tiny_run(epochs=1), tiny_cache, tmp_path / "run", checkpoint=ck)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert "unreadable" in capsys.readouterr().err
    # the run started over and finished; its own checkpoint is then removed
    assert (tmp_path / "run" / "metrics.json").exists() and not ck.exists()


# ---- hostile checkpoints, concurrent trainers, outputs (issue 12)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_unreadable_checkpoint_is_named_and_moved_aside(tmp_path, capsys, damage):
    ck = tmp_path / "ck.pt"
    torch.save({k: torch.zeros(1000) for k in CHECKPOINT_KEYS}, ck)
    whole = ck.read_bytes()
    ck.write_bytes(
        {"empty": b"", "truncated": whole[: len(whole) // 2], "garbage": b"x" * 99}[damage]
    )
    assert read_checkpoint(ck, set_aside=True) is None
    err = capsys.readouterr().err
    assert f"checkpoint {ck} is unreadable" in err and "starting the run over" in err, err
    assert not ck.exists() and (tmp_path / "ck.pt.unreadable").exists()


def test_damaged_or_other_data_checkpoint_starts_over(tiny_cache, tmp_path, capsys):
    """A checkpoint that loads but cannot be restored (here: weights of another shape)
    is moved aside and the run starts over; one trained on other data is not resumed
    (a fresh start is byte-identical to an uninterrupted run: the test above)."""
    from repro.engine.data import content_hash

    rc = tiny_run(epochs=1)
    data_id = content_hash(load(tiny_cache))
    ck = tmp_path / "ck.pt"
    damaged = {**dict.fromkeys(CHECKPOINT_KEYS), "fingerprint": rc.fingerprint(), "data": data_id}
    torch.save({**damaged, "model": {"features.0.weight": torch.zeros(2)}}, ck)
    train_run(rc, tiny_cache, tmp_path / "run", checkpoint=ck)
    err = capsys.readouterr().err
    assert f"checkpoint {ck} is damaged" in err and (tmp_path / "ck.pt.unreadable").exists()
    assert (tmp_path / "run/metrics.json").exists()
    torch.save({**damaged, "data": "0" * 64}, ck)
    train_run(rc, tiny_cache, tmp_path / "other", checkpoint=ck)
    assert "trained on different data" in capsys.readouterr().err


def test_second_trainer_of_a_run_is_refused(tiny_cache, tmp_path):
    from repro.engine.train_lock import RunLock

    ck = tmp_path / "ck.pt"
    with RunLock(tmp_path / "ck.pt.lock", "the run"):
        with pytest.raises(
            UserError, match=rf"being trained by another process \(pid {os.getpid()}"
        ):
            train_run(tiny_run(), tiny_cache, tmp_path / "run", checkpoint=ck)
    assert not (tmp_path / "run").exists()


def test_trainer_notices_that_the_workflow_was_killed(tmp_path):
    """SIGKILL the process above `bash -c` (as Snakemake runs a job): the trainer's
    ancestry changes and it would stop after its current epoch."""
    child = (
        "import time, pathlib; from repro.engine.train_lock import Ancestry; a = Ancestry(); "
        f"p = pathlib.Path({str(tmp_path)!r}); (p / 'ready').touch(); t = time.time()\n"
        "while not a.gone() and time.time() - t < 20: time.sleep(0.02)\n"
        "(p / 'gone').write_text(str(a.gone()))"
    )
    launcher = (
        "import subprocess, sys, time; "
        f"subprocess.Popen(['bash', '-c', {sys.executable!r} + ' -c ' + sys.argv[1] + '; true']);"
        " time.sleep(60)"
    )
    import shlex

    proc = subprocess.Popen([sys.executable, "-c", launcher, shlex.quote(child)])
    _wait_for(tmp_path / "ready", proc, timeout=20)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while not (tmp_path / "gone").exists() and time.time() - t0 < 20:
        time.sleep(0.05)
    assert (tmp_path / "gone").read_text() == "True"


def test_batch_of_one_image_is_refused_before_training(tiny_cache, tmp_path):
    # 300 images: a batch size of 299 leaves one image for the last batch
    with pytest.raises(UserError, match=r"batch_size = 299 leaves a batch of exactly one image"):
        train_run(tiny_run(batch_size=299), tiny_cache, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused_before_training(tiny_cache, tmp_path, capsys):
    from repro import cli

    taken = tmp_path / "taken"
    taken.write_text("keep me")
    args = ["train", "--device", "cpu", "--cache", str(tiny_cache), "--out", str(taken)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"error: --out {taken} is an existing file, not a folder; give a run folder "
        "(it is created) or move the file away"
    )
    assert taken.read_text() == "keep me"
    args = ["timing", "--device", "cpu", "--cache", str(tiny_cache), "--out", str(tmp_path)]
    assert cli.main(args) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path} is a folder")


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    from repro import files

    calls = []
    monkeypatch.setattr(files.os, "fsync", lambda fd: calls.append("fsync"))
    real_replace = os.replace
    monkeypatch.setattr(
        files.os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))
    )
    files.write_atomic(tmp_path / "x.txt", "data")
    assert calls[:2] == ["fsync", "replace"] and (tmp_path / "x.txt").read_text() == "data"


def test_timing_stage_leaves_only_its_json(tiny_runs):
    """The timing stage writes its JSON and nothing else (once, a temporary run's lock
    file stayed in results/timing/; the stage now trains without a run folder)."""
    folder = tiny_runs["timing"][0].parent
    assert sorted(p.name for p in folder.iterdir()) == ["timing.json"]
