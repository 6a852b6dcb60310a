"""`status`: where the study stands, read from the files its runs write (progress files,
checkpoints, logs, metrics.json), so it works from a SLURM login node while the jobs
run on compute nodes, and costs nothing to call. No torch.

A run is waiting (nothing written yet), running, stopped (killed or pre-empted; the
checkpoint's epoch is where it resumes), failed (with the first line of its error) or
done. A run's progress file names its host and process: on the same host a dead
process means stopped; from another host a file without an update for much longer
than an epoch means stopped.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..files import loads_bounded, read_regular
from ..text import for_terminal
from . import grid
from . import machine as devices
from . import progress as progress_mod
from .config import DEFAULT_CONFIG
from .config import load_study as load_config

# a run on another host counts as stopped after this many epochs' time without an update
STALE_EPOCHS = 3
STALE_MIN_S = 600.0
STALE_FIRST_EPOCH_S = 3600.0
MAX_READ_BYTES = 64 * 2**20  # as repro.recorded.MAX_BYTES: no run file or log is larger


@dataclass
class RunStatus:
    head: str
    lr: str
    device: str
    seed: int
    state: str  # waiting | running | stopped | failed | done
    epoch: int
    epochs: int
    detail: str = ""
    train_acc: float | None = None
    test_acc: float | None = None
    seconds_per_epoch: float | None = None
    eta_s: float | None = None


def resolve_auto(cfg: dict, root: Path) -> str:
    """`auto` as this study's runs resolved it: the device one of whose runs of this
    study (folder, progress file or checkpoint) is under results/, else what this host
    would give (guessed without torch). Only the study's own folders count: the cuda
    runs a recorded report copied into results/ do not make a CPU study's auto cuda."""
    for dev in ("cuda", "mps", "cpu"):
        for r in grid.runs(cfg, auto=dev):
            places = (grid.RUN_DIR, progress_mod.PROGRESS, progress_mod.CHECKPOINT)
            if r["device"] == dev and any((root / p.format(**r)).exists() for p in places):
                return dev
    return devices.likely_auto()


def planned_runs(cfg: dict, root: Path) -> list[dict]:
    auto = resolve_auto(cfg, root) if "auto" in cfg["devices"] else None
    return grid.runs(cfg, auto=auto)


def error_line(log_text: str) -> str | None:
    """The first line of a failed run's error in its log: our one-line ``error: ...``,
    else a traceback's final ``SomeError: message`` line."""
    lines = log_text.splitlines()
    for line in lines:
        if line.startswith("error: "):
            return line[len("error: ") :]
    if any(line.startswith("Traceback") for line in lines):
        for line in reversed(lines):
            if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line):
                return line
    return None


def process_alive(rec: dict) -> bool | None:
    """Whether the run's process still lives: None when it ran on another host."""
    if rec.get("host") != socket.gethostname():
        return None
    pid = rec.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a reused pid belongs to some other program
        try:
            return b"repro" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def _read_text(path: Path) -> str | None:
    try:  # never a FIFO or device, never more than a run's file could be
        return read_regular(path, MAX_READ_BYTES, "file").decode(errors="replace")
    except UserError:
        return None


def run_status(root: Path, run: dict, epochs: int, now: float) -> RunStatus:
    where = {k: run[k] for k in ("head", "lr", "device", "seed", "hash")}
    st = RunStatus(run["head"], run["lr"], run["device"], run["seed"], "waiting", 0, epochs)
    metrics_text = _read_text(root / grid.RUN_DIR.format(**where) / "metrics.json")
    if metrics_text is not None:
        try:
            m = loads_bounded(metrics_text, "metrics.json")
            st.state, st.epoch = "done", min(max(int(m["epochs"]), 0), epochs)
            st.train_acc, st.test_acc = m["final_train_acc"], m["final_test_acc"]
            st.seconds_per_epoch, st.eta_s = m["seconds_per_epoch"], 0.0
            numbers = [progress_mod.number(v, high=1.0) for v in (st.train_acc, st.test_acc)]
            if all(numbers) and progress_mod.number(st.seconds_per_epoch):
                return st
            raise ValueError("not numbers")
        except (ValueError, KeyError, TypeError, OverflowError, UserError):
            # a foreign or damaged file: judge by the other files
            st = RunStatus(run["head"], run["lr"], run["device"], run["seed"], "waiting", 0, epochs)
    rec = progress_mod.read(root / progress_mod.PROGRESS.format(**where))
    checkpoint = root / progress_mod.CHECKPOINT.format(**where)
    log_text = _read_text(root / progress_mod.TRAIN_LOG.format(**where)) or ""
    if rec is None:
        err = error_line(log_text)
        if err:
            st.state, st.detail = "failed", err
        elif checkpoint.exists():
            st.state, st.detail = "stopped", "checkpoint (epoch unknown: no progress file)"
        return st

    st.epoch = min(rec["epoch"], epochs)  # a file of another run length: never past the end
    st.train_acc, st.test_acc = rec.get("train_acc"), rec.get("test_acc")
    st.seconds_per_epoch = rec.get("seconds_per_epoch")
    state = rec["state"]
    since_update = max(0.0, now - float(rec.get("updated") or now))
    if state == "running":
        alive = process_alive(rec)
        spe = st.seconds_per_epoch
        stale_after = max(STALE_MIN_S, STALE_EPOCHS * spe if spe else STALE_FIRST_EPOCH_S)
        if alive is False:
            state = "stopped"
        elif alive is None and since_update > stale_after:
            state = "stopped"
            st.detail = f"no update from {rec.get('host')} for {progress_mod.hms(since_update)}; "
    if state == "done":  # progress says done but the outputs are gone (removed or moved)
        state = "stopped"
    st.state = state
    if state == "failed":
        st.detail = error_line(log_text) or rec.get("error") or "see its log"
    elif state == "stopped":
        st.detail += f"checkpoint at epoch {st.epoch}" if checkpoint.exists() else "no checkpoint"
    if st.seconds_per_epoch and state != "failed":
        left = st.seconds_per_epoch * max(0, epochs - st.epoch)
        st.eta_s = max(0.0, left - since_update) if state == "running" else left
    return st


@dataclass
class Total:
    epochs_done: int
    epochs_planned: int
    counts: dict
    rate_epochs_per_s: float  # of the running runs together
    eta_s: float | None
    eta_basis: str


def total(rows: list[RunStatus]) -> Total:
    done = sum(r.epoch for r in rows)
    planned = sum(r.epochs for r in rows)
    states = ("done", "running", "stopped", "failed", "waiting")  # the total line's order
    counts = {s: sum(r.state == s for r in rows) for s in states}
    rate = sum(
        1 / r.seconds_per_epoch for r in rows if r.state == "running" and r.seconds_per_epoch
    )
    left = max(0, planned - done)
    if left == 0:
        return Total(done, planned, counts, rate, 0.0, "")
    if rate > 0:
        return Total(done, planned, counts, rate, left / rate, "at the current rate")
    known = [r.seconds_per_epoch for r in rows if r.seconds_per_epoch]
    if known:
        mean = sum(known) / len(known)
        return Total(done, planned, counts, rate, left * mean, "one run at a time")
    return Total(done, planned, counts, rate, None, "")


def plan(configfiles: list[Path], root: Path = Path(".")) -> tuple[list[dict], int]:
    """The study's runs and epochs per run, from its config: once per status call, not
    once per redraw (it reads the data to hash the run folders)."""
    cfg = load_config(configfiles)
    if cfg["recorded"]:
        raise UserError(
            f"this config copies recorded runs ({cfg['recorded']}); nothing trains, so there "
            "is no status to show: drop `recorded` to follow a training run"
        )
    return planned_runs(cfg, root), cfg["train"]["epochs"]


def collect(planned: tuple[list[dict], int], root: Path = Path("."), now: float | None = None):
    """The study's rows and total line, from the files under ``root``."""
    runs, epochs = planned
    now = time.time() if now is None else now
    rows = [run_status(root, r, epochs, now) for r in runs]
    return rows, total(rows)


COLUMNS = ("head", "lr", "device", "seed", "state", "epoch", "train acc", "test acc", "s/epoch")
COLUMNS += ("ETA",)


def cells(r: RunStatus) -> list[str]:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    state = f"{r.state}: {r.detail}" if r.detail else r.state
    values = [
        r.head,
        r.lr,
        r.device,
        str(r.seed),
        state,
        f"{r.epoch}/{r.epochs}",
        pct(r.train_acc),
        pct(r.test_acc),
        "-" if r.seconds_per_epoch is None else f"{r.seconds_per_epoch:.1f}",
        progress_mod.hms(r.eta_s) if r.state != "done" else "",
    ]
    # a log's error line or a progress file may hold escape sequences: shown, not obeyed
    return [for_terminal(v) for v in values]


def total_line(t: Total) -> str:
    parts = [f"{n} {s}" for s, n in t.counts.items() if n]
    line = f"total: {t.epochs_done}/{t.epochs_planned} epochs; {', '.join(parts)}"
    if t.epochs_done == t.epochs_planned:
        return line + "; the study's training is complete"
    if t.eta_s is None:
        return line + "; ETA unknown until a run finishes an epoch"
    rate = f", {t.rate_epochs_per_s * 3600:.1f} epochs/h" if t.rate_epochs_per_s else ""
    return line + f"; ETA {progress_mod.hms(t.eta_s)} ({t.eta_basis}{rate})"


def plain(rows: list[RunStatus], t: Total) -> str:
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    return "\n".join([*lines, total_line(t)]) + "\n"


STATE_STYLE = {"done": "green", "running": "cyan", "stopped": "yellow", "failed": "red"}


def rich_table(rows: list[RunStatus], t: Total, title: str):
    from rich.table import Table
    from rich.text import Text

    # Text, not str: rich would read `[red]` or `[link=...]` in a value as markup
    table = Table(title=Text(title), caption=Text(total_line(t)), caption_justify="left")
    for name in COLUMNS:
        right = name in ("lr", "seed", "epoch", "train acc", "test acc", "s/epoch", "ETA")
        table.add_column(name, justify="right" if right else "left")
    for r in rows:
        table.add_row(*map(Text, cells(r)), style=STATE_STYLE.get(r.state))
    return table


def show(
    configfiles: list[Path],
    watch: bool = False,
    interval: float = 2.0,
    tty: bool | None = None,
    out=None,
) -> None:
    """Print the status once, or with ``watch`` redraw it every ``interval`` seconds
    (in place on a terminal, appended otherwise) until interrupted."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    title = f"study status ({', '.join(map(str, configfiles)) or DEFAULT_CONFIG})"
    console = None
    if tty:
        try:
            from rich.console import Console

            console = Console(file=out)
        except ImportError:  # a bare python without rich: the plain table
            console = None
    stamp = lambda: time.strftime("%H:%M:%S")  # noqa: E731
    planned = plan(configfiles)
    try:
        if console is None:
            while True:
                rows, t = collect(planned)
                out.write((f"[{stamp()}]\n" if watch else "") + plain(rows, t))
                out.flush()
                if not watch:
                    return
                time.sleep(interval)
        if not watch:
            console.print(rich_table(*collect(planned), title))
            return
        from rich.live import Live

        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                live.update(rich_table(*collect(planned), f"{title} {stamp()}"), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return
