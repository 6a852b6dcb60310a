"""A pack's runs on disk: ``train_pack`` trains K runs together (repro.pack) and writes
each run's folder exactly as ``train_run`` writes it (same files and columns;
metrics.json gains ``"layout": {"k": K, "slot": i}``), with a checkpoint per run.

The layout is recorded, not part of the run's identity (``RunConfig.fingerprint``): a
packed run is the same computation as the single run, differing only in summation
order (float64 equality to 1e-12, tests/test_wide.py), as a run on 1 or 2 threads
does, and the thread count is not in the identity either. With it in, a recorded study
would have to be retrained, and a checkpoint could not resume, because a run was packed
with other runs. (Precision is in the identity because bf16 changes the arithmetic
itself.)

A run's checkpoint holds what a single run's does (weights, SGD state dict, data
generator, the generator its dropout draws from, the history), so a pack resumes from K
of them whatever slot each had (its layout is kept in it for the record). Two
differences from a single run's: checkpoints are written at most once per
``checkpoint_every`` seconds (a stop loses at most that much work, the issue's "about a
minute"), and the per-step history is kept as one float64 tensor beside the history
instead of inside it, so that saving does not pickle a list that grows every step.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from ..files import rename_over, write_atomic
from ..plan.code_identity import code_identity
from ..plan.progress import ProgressFile
from ..plan.settings import RunConfig
from . import data as data_mod
from .model import count_parameters
from .pack import (
    EVAL_BATCH,
    PackState,
    check_pack,
    describe,
    fit_pack,
    fresh_pack,
    load_run_states,
    run_states,
)
from .train import (
    DeviceData,
    _progress_fields,
    check_outputs,
    load_data,
    lock_path,
    log,
    log_epoch,
    read_checkpoint,
    setup_device,
    stop_if_orphaned,
    stoppable,
    summarise,
    torch_bytes,
    write_run,
)
from .train_lock import Ancestry, RunLock

PACK_CHECKPOINT_KEYS = (
    "fingerprint",
    "data",
    "layout",
    "model",
    "optimizer",
    "generator",
    "dropout_rng",
    "history",
    "steps",
)
CHECKPOINT_EVERY_S = 60.0


def train_pack(
    rcs: list[RunConfig],
    cache: Path,
    outs: list[Path],
    checkpoints: list[Path] | None = None,
    progress: list[Path] | None = None,
    write_steps: bool = True,
    checkpoint_every: float = CHECKPOINT_EVERY_S,
    eval_batch: int = EVAL_BATCH,
    gpu: dict | None = None,
) -> list[dict]:
    """Train ``rcs`` as one pack; write run i's folder to ``outs[i]`` (and, given, its
    checkpoint and progress file) as ``train_run`` does; returns the runs' metrics.
    ``gpu``: the GPU the job took (devices.take_gpu), recorded in each metrics.json."""
    rcs = [rc.on_this_machine() for rc in rcs]
    outs = [Path(o) for o in outs]
    checkpoints = [Path(c) for c in checkpoints] if checkpoints is not None else None
    check_pack(rcs, outs, checkpoints, progress)
    cks = checkpoints or [None] * len(rcs)
    for out, ck in zip(outs, cks, strict=True):
        check_outputs(out, ck)
    progs = [ProgressFile(p, rcs[0].epochs) for p in (progress or [None] * len(rcs))]
    with contextlib.ExitStack() as locks:
        for out, ck in zip(outs, cks, strict=True):
            locks.enter_context(RunLock(lock_path(out, ck), str(out)))
        for prog in progs:
            prog.update()
        try:
            metrics = _train_pack(
                rcs, cache, outs, checkpoints, write_steps, progs, checkpoint_every, eval_batch, gpu
            )
        except BaseException as e:
            _fail(progs, e)
            raise
        for prog in progs:
            prog.update(state="done")
        return metrics


def _fail(progs: list[ProgressFile], e: BaseException) -> None:
    """Every run's progress file says how the pack ended (as train_run's)."""
    if isinstance(e, SystemExit):
        fields = {"state": "stopped" if e.code == 143 else "failed", "error": f"exit {e.code}"}
    elif isinstance(e, KeyboardInterrupt):
        fields = {"state": "stopped"}
    else:
        first = (str(e).strip().splitlines() or [""])[0]
        fields = {"state": "failed", "error": f"{type(e).__name__}: {first}".rstrip(": ")}
    for prog in progs:
        prog.update(**fields)


def _train_pack(
    rcs, cache, outs, checkpoints, write_steps, progs, checkpoint_every, eval_batch, gpu
):
    t_start = time.perf_counter()
    code = code_identity()  # as train_run: the code as this job starts
    ancestry = Ancestry()
    ds = load_data(rcs[0], cache)
    data_id = data_mod.content_hash(ds)
    dd = DeviceData(ds, setup_device(rcs[0]))
    state = restore_pack(rcs, dd.device, checkpoints, data_id)
    last_save, saved_epoch = time.perf_counter(), state.histories[0]["epoch"]

    def after_epoch(state: PackState) -> None:
        nonlocal last_save, saved_epoch
        epoch = state.histories[0]["epoch"]
        if checkpoints is not None and time.perf_counter() - last_save >= checkpoint_every:
            save_pack(checkpoints, rcs, data_id, state)
            last_save, saved_epoch = time.perf_counter(), epoch
        for prog, history in zip(progs, state.histories, strict=True):
            prog.update(**_progress_fields(history))
            log_epoch(history, rcs[0].epochs)
        stop_if_orphaned(ancestry, epoch, rcs[0].epochs)

    kept = lambda: f"checkpoints after epoch {saved_epoch} kept"  # noqa: E731
    with stoppable(kept):
        log(f"pack of {len(rcs)} runs ({describe(rcs)}) on {dd.device}: {dd.n_train} images")
        histories = fit_pack(rcs, dd, state, write_steps, after_epoch, eval_batch)
    wall = time.perf_counter() - t_start
    parameters = count_parameters(state.wide) // len(rcs)
    weights = state.wide.unpack()
    results = []
    for slot, (rc, out, history) in enumerate(zip(rcs, outs, histories, strict=True)):
        metrics = summarise(
            rc, history, dd.n_train, len(dd.y_test), parameters, data_id, wall, code
        )
        metrics["test_steps_per_epoch"] = -(-len(dd.y_test) // eval_batch)
        metrics["layout"] = {"k": len(rcs), "slot": slot}
        if gpu is not None:
            metrics["gpu"] = gpu
        write_run(out, history, metrics, weights[slot], dd.y_test.cpu(), write_steps)
        results.append(metrics)
    # only once every run's folder is written: a stop in between resumes them all
    for ck in checkpoints or []:
        ck.unlink(missing_ok=True)
    return results


def save_pack(checkpoints: list[Path], rcs: list[RunConfig], data_id: str, state: PackState):
    """One checkpoint per run (see the module's docstring), in two phases so that a stop
    at any moment leaves one epoch that every run can resume from: all K written in
    full beside their checkpoints (``.next``), then renamed over them
    (``pending_checkpoints`` finishes or discards an interrupted save)."""
    k = len(rcs)
    runs = run_states(rcs, state)
    for slot, (path, rc, run, history) in enumerate(
        zip(checkpoints, rcs, runs, state.histories, strict=True)
    ):
        ck = {
            "fingerprint": rc.fingerprint(),
            "data": data_id,
            "layout": {"k": k, "slot": slot},
            **run,
            "history": {key: v for key, v in history.items() if key != "steps"},
            "steps": torch.tensor(history["steps"], dtype=torch.float64).view(-1, 5),
        }
        write_atomic(_next(path), torch_bytes(ck))
    for path in checkpoints:
        rename_over(_next(path), path)


def _next(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def pending_checkpoints(checkpoints: list[Path]) -> list[dict | None]:
    """The runs' checkpoints, an interrupted ``save_pack`` settled first: its renames
    finished when every run has a file of one epoch with the ``.next`` ones (the first
    phase was complete), else its ``.next`` files removed (the old ones are one epoch)."""
    nexts = [read_checkpoint(_next(p)) if _next(p).exists() else None for p in checkpoints]
    if not any(nexts):
        return [read_checkpoint(p) for p in checkpoints]
    current = [read_checkpoint(p) for p in checkpoints]
    newest = [n if n is not None else c for n, c in zip(nexts, current, strict=True)]
    if _one_epoch(newest):
        for path, n in zip(checkpoints, nexts, strict=True):
            if n is not None:
                rename_over(_next(path), path)
        return newest
    for path in checkpoints:
        _next(path).unlink(missing_ok=True)
    return current


def _one_epoch(cks: list[dict | None]) -> bool:
    epochs = {ck["history"]["epoch"] if ck and "history" in ck else None for ck in cks}
    return len(epochs) == 1 and None not in epochs


def restore_pack(
    rcs: list[RunConfig], device: torch.device, checkpoints: list[Path] | None, data_id: str
) -> PackState:
    """Where the pack continues: from its runs' checkpoints when every one is ours, of
    its run's settings, of this data and at the same epoch; else from the start (one
    log line says why)."""
    state = fresh_pack(rcs, device)
    if checkpoints is None:
        return state
    cks = pending_checkpoints(checkpoints)
    why = _unusable(cks, rcs, data_id)
    if why:
        log(f"pack starts over: {why}")
        return state
    try:
        load_run_states(state, cks)
        for history, ck in zip(state.histories, cks, strict=True):
            history.clear()
            history.update(ck["history"])
            history["steps"] = [
                (int(e), int(s), loss, acc, lr) for e, s, loss, acc, lr in ck["steps"].tolist()
            ]
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint fails in many ways
        log(f"pack starts over: a checkpoint is damaged ({type(e).__name__}: {e})")
        return fresh_pack(rcs, device)
    log(f"pack resumed after epoch {state.histories[0]['epoch']}/{rcs[0].epochs}")
    return state


def _unusable(cks: list[dict | None], rcs: list[RunConfig], data_id: str) -> str | None:
    """Why the runs' checkpoints cannot resume this pack, or None."""
    if all(ck is None for ck in cks):
        return "no checkpoints"
    for ck, rc in zip(cks, rcs, strict=True):
        if ck is None or any(key not in ck for key in PACK_CHECKPOINT_KEYS):
            return "a run's checkpoint is missing or not a pack checkpoint"
        if ck["fingerprint"] != rc.fingerprint():
            return f"the checkpoint of lr={rc.lr} seed={rc.seed} is of other settings"
        if ck["data"] != data_id:
            return "the checkpoints were trained on other data"
    epochs = {ck["history"]["epoch"] for ck in cks}
    if len(epochs) != 1 or not 0 <= epochs.pop() <= rcs[0].epochs:
        return "the runs' checkpoints are at different epochs"
    return None
