"""`repro status` through a real tiny study (a run killed mid-way, then resumed to the
end, a run that fails, a run not started), read from the files the runs write; the
stale-file rule for runs on other hosts; the estimate's calibration and arithmetic."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ARCHIVE, ROOT, TINY_MODEL

from repro.plan import estimate, grid, status
from repro.plan import progress as progress_mod

EPOCHS = 10


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A project folder with the tiny study's config (three learning rates, one seed)."""
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    tiny = {
        "data": {"source": "archive", "archive": str(ARCHIVE)},
        "model": TINY_MODEL,
        "devices": ["cpu"],
        "train": {"epochs": EPOCHS, "batch_size": 32, "precision": "fp32"},
        "timing": {"enabled": False},
    }
    tiny["data"]["subset"] = {"train_per_class": 30, "test_per_class": 10}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    monkeypatch.chdir(tmp_path)
    cfg = status.load_config([Path("tiny.yaml")])
    return cfg, status.planned_runs(cfg, Path("."))


def train_cmd(cfg: dict, run: dict, cache: Path) -> str:
    """The train rule's command for ``run``, as workflow/rules/train.smk runs it."""
    out = grid.RUN_DIR.format(**run)
    log = Path(progress_mod.TRAIN_LOG.format(**run))
    log.parent.mkdir(parents=True, exist_ok=True)
    return (
        f"{sys.executable} -m repro train --threads 1 "
        f"--run {shlex.quote(grid.run_description(cfg, **run))} "
        f"--cache {cache} --out {out} --checkpoint {progress_mod.CHECKPOINT.format(**run)} "
        f"--progress {progress_mod.PROGRESS.format(**run)} 2> {log}"
    )


def rows_by_lr() -> dict:
    rows, total = status.collect(status.plan([Path("tiny.yaml")]))
    return {r.lr: r for r in rows}, total


def test_status_follows_a_killed_a_resumed_and_a_failed_run(study, tiny_cache):
    cfg, runs = study
    assert [r["lr"] for r in runs] == ["0.01", "0.005", "0.001"]
    rows, total = rows_by_lr()
    assert {r.state for r in rows.values()} == {"waiting"} and total.epochs_done == 0

    # running, then killed (SIGKILL: no chance to write anything) after epoch >= 2
    first = runs[0]
    proc = subprocess.Popen(train_cmd(cfg, first, tiny_cache), shell=True, start_new_session=True)
    prog = Path(progress_mod.PROGRESS.format(**first))
    t0 = time.time()
    while (progress_mod.read(prog) or {}).get("epoch", 0) < 2:
        assert proc.poll() is None and time.time() - t0 < 60, "the run never reached epoch 2"
        time.sleep(0.05)
    rows, total = rows_by_lr()
    run = rows["0.01"]
    assert run.state == "running", run
    assert 2 <= run.epoch < EPOCHS and run.epochs == EPOCHS
    assert 0 <= run.train_acc <= 1 and 0 <= run.test_acc <= 1
    assert run.seconds_per_epoch > 0 and run.eta_s > 0
    assert total.rate_epochs_per_s > 0 and total.eta_basis == "at the current rate"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rows, total = rows_by_lr()
    run = rows["0.01"]
    k = progress_mod.read(prog)["epoch"]
    assert run.state == "stopped" and run.detail == f"checkpoint at epoch {k}" and k >= 2
    assert run.eta_s == pytest.approx(run.seconds_per_epoch * (EPOCHS - k))
    assert total.epochs_done == k and total.eta_basis == "one run at a time"

    # resumed to the end: done, with the outcome line on stdout (Snakemake shows it)
    res = subprocess.run(train_cmd(cfg, first, tiny_cache), shell=True, capture_output=True)
    assert res.returncode == 0
    outcome = res.stdout.decode().strip()
    metrics = json.loads(Path(grid.RUN_DIR.format(**first), "metrics.json").read_text())
    assert outcome.startswith(f"run softmax lr=0.01 cpu seed=0: {EPOCHS} epochs, final train")
    assert f"test acc {metrics['final_test_acc']:.4f}" in outcome
    assert "epoch" in Path(progress_mod.TRAIN_LOG.format(**first)).read_text()

    # a run whose data cache is damaged fails; status shows its error's first line
    bad = Path("bad.npz")
    bad.write_bytes(b"not a cache")
    second = runs[1]
    assert subprocess.run(train_cmd(cfg, second, bad), shell=True).returncode == 2

    rows, total = rows_by_lr()
    done, failed, waiting = rows["0.01"], rows["0.005"], rows["0.001"]
    assert done.state == "done" and done.epoch == EPOCHS
    assert done.test_acc == metrics["final_test_acc"]
    assert failed.state == "failed" and failed.detail.startswith("data cache bad.npz is unreadable")
    assert waiting.state == "waiting" and waiting.epoch == 0
    assert total.epochs_done == EPOCHS and total.epochs_planned == 3 * EPOCHS
    assert total.counts == {"done": 1, "running": 0, "stopped": 0, "failed": 1, "waiting": 1}

    # what a person sees: plain text when not a terminal, a rich table on one
    out = io.StringIO()
    status.show([Path("tiny.yaml")], tty=False, out=out)
    text = out.getvalue().splitlines()
    assert text[0].split() == [*" ".join(status.COLUMNS).split()]
    assert text[1].split()[:6] == ["softmax", "0.01", "cpu", "0", "done", f"{EPOCHS}/{EPOCHS}"]
    assert text[2].split()[4:6] == ["failed:", "data"]
    assert text[-1].startswith(f"total: {EPOCHS}/{3 * EPOCHS} epochs; 1 done, 1 failed, 1 waiting")
    out = io.StringIO()
    status.show([Path("tiny.yaml")], tty=True, out=out)
    assert "study status" in out.getvalue() and "┃" in out.getvalue()


def test_run_on_another_host_is_stopped_only_when_its_file_is_stale(study):
    cfg, runs = study
    path = Path(progress_mod.PROGRESS.format(**runs[0]))
    now = 1_000_000.0

    def seen(updated: float) -> status.RunStatus:
        rec = {"state": "running", "epoch": 4, "epochs": EPOCHS, "seconds_per_epoch": 60.0}
        rec |= {"host": "compute-17", "pid": 1, "updated": updated}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
        return status.run_status(Path("."), runs[0], EPOCHS, now)

    recent = seen(now - 30)
    assert recent.state == "running" and recent.eta_s == 60.0 * (EPOCHS - 4) - 30
    stale = seen(now - 3 * 3600)
    assert stale.state == "stopped"
    assert stale.detail == "no update from compute-17 for 3:00:00; no checkpoint"


def test_error_line_of_a_log():
    assert status.error_line("[10:00:00] run\nerror: cache x is unreadable; rerun\n") == (
        "cache x is unreadable; rerun"
    )
    traceback = 'Traceback (most recent call last):\n  File "x"\nRuntimeError: out of memory\n'
    assert status.error_line(traceback) == "RuntimeError: out of memory"
    assert status.error_line("[10:00:00] epoch 1/2 ...\n") is None


def test_status_bad_config_is_one_line(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "repro", "status", "-d", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: config file config/config.yaml does not exist; run from the project "
        "folder (or pass --directory) with the --configfile of the snakemake call"
    ]


def test_estimate_calibrates_once_and_scales_to_the_plan(study):
    cfg, runs = study
    root = Path(".")
    first = estimate.lines(cfg, runs, [], root, local=True, calibrate_now=True)
    rec = estimate.cached(cfg, "cpu", root)
    assert rec is not None and rec["step_s"] > 0 and rec["device"] == "cpu"
    assert first[0].startswith(f"plan: 3 runs x {EPOCHS} epochs")
    assert "300 training / 100 test images" in first[0] and f"{3 * EPOCHS} epochs left" in first[0]
    assert "(calibrated now)" in first[1]
    # the second start reads the cache; the arithmetic: steps + a third per test image
    again = estimate.lines(cfg, runs, [], root, local=True, calibrate_now=True)
    assert f"(calibrated {rec['measured']})" in again[1]
    per_epoch = (300 / 32 // 1 + 1 + 100 / 32 / 3) * rec["step_s"]
    assert estimate.epoch_seconds(rec["step_s"], 32, 300, 100) == pytest.approx(per_epoch)
    assert f"{per_epoch:.1f} s per epoch" in again[1]
    # skipped: no calibration and no time for the CPU; the H100 figure for scale
    shutil.rmtree(root / estimate.CACHE_DIR)
    skipped = estimate.lines(cfg, runs, [], root, local=True, calibrate_now=False)
    assert skipped[1].endswith("time unknown (calibration skipped)")
    assert "for scale: on one NVIDIA H100" in skipped[2]
    assert not (root / estimate.CACHE_DIR).exists()


def test_status_shows_escape_sequences_and_markup_from_files_as_text(study):
    """A run's log (or progress file) is data: its escape sequences (clear screen, set
    the window title) are shown escaped and `[...]` is not read as rich markup."""
    cfg, runs = study
    log = Path(progress_mod.TRAIN_LOG.format(**runs[0]))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("error: \x1b]0;pwned\x07 [red]boom[/red]\x1b[2J\u202eok\n")
    shown = "\\x1b]0;pwned\\x07 [red]boom[/red]\\x1b[2J\\u202eok"
    row = status.run_status(Path("."), runs[0], EPOCHS, time.time())
    assert row.state == "failed" and status.cells(row)[4] == f"failed: {shown}"
    plain, rich = io.StringIO(), io.StringIO()
    status.show([Path("tiny.yaml")], tty=False, out=plain)
    assert f"failed: {shown}" in plain.getvalue() and "\x1b" not in plain.getvalue()
    from rich.console import Console

    console = Console(file=rich, width=400, force_terminal=True, color_system=None)
    console.print(status.rich_table(*status.collect(status.plan([Path("tiny.yaml")])), "t"))
    assert "[red]boom[/red]" in rich.getvalue() and "\x1b]0;" not in rich.getvalue()


@pytest.mark.parametrize(
    "change",
    [
        {"test_acc": "0.9"},
        {"train_acc": 1.5},
        {"epoch": -1},
        {"epochs": True},
        {"seconds_per_epoch": float("inf")},
        {"updated": "now"},
        {"pid": 1.5},
        {"host": ["vm"]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_damaged_progress_file_reads_as_none(tmp_path, change):
    """status formats what a progress file holds: a text accuracy, a time of infinity or a
    host that is a list (forged or damaged files) is no progress file, not a crash."""
    path = tmp_path / "p.json"
    progress_mod.ProgressFile(path, epochs=3).update(epoch=1, train_acc=0.5, test_acc=0.4)
    assert progress_mod.read(path)["epoch"] == 1, "what the trainer writes reads back"
    rec = json.loads(path.read_text())
    path.write_text(json.dumps({**rec, **change}))
    assert progress_mod.read(path) is None


def test_auto_is_resolved_from_this_studys_own_runs(tmp_path, monkeypatch):
    """Another study's cuda runs under results/ (the recorded report copies its runs
    there) leave this study's `auto` as the host gives it; a progress file of one of
    this study's own cuda runs makes it cuda (the study ran there: status shows it)."""
    monkeypatch.setattr(status.devices, "likely_auto", lambda: "cpu")
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    study = {"data": {"source": "archive", "archive": str(ARCHIVE)}, "devices": ["auto"]}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    cfg = status.load_config([Path("study.yaml")])
    own = grid.runs(cfg, auto="cuda")[1]
    other = Path(grid.RUN_DIR.format(**{**own, "hash": "0123abcd"}))
    other.mkdir(parents=True)
    (other / "metrics.json").write_text("{}")
    assert {r["device"] for r in status.planned_runs(cfg, Path("."))} == {"cpu"}

    progress = Path(progress_mod.PROGRESS.format(**own))
    progress.parent.mkdir(parents=True)
    progress.write_text("{}")
    assert {r["device"] for r in status.planned_runs(cfg, Path("."))} == {"cuda"}
