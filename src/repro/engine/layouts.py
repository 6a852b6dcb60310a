"""How fast the candidate layouts train one model shape on this device, in the run's own
arithmetic (its precision and compile mode; fp32 with TF32 convolutions on cuda, as
``train.setup_device`` sets): one run alone in one process (today's path,
``throughput.project_loop``), and K runs as one wide network (repro.engine.pack), each
measured as aggregate full-data epochs per second (training steps of the whole data set
plus one evaluation of the test set, all K runs together). Also the bf16 matmul ceiling
of the device, measured in the same process.

It runs in a child process of the device command (``python -m repro measure-layouts``),
which rewrites its JSON after every layout, so a time limit keeps what was measured.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..plan.description import checked_any_size, read_description
from ..plan.settings import RunConfig
from . import throughput
from .pack import EVAL_BATCH, evaluate_pack, fresh_pack, make_pack_steps
from .train import DeviceData, load_data, setup_device
from .wide import dropout_masks


def epochs_per_s(n_train: int, batch: int, step_s: float, eval_s: float, k: int) -> float:
    """Aggregate epochs/s of ``k`` runs whose shared step takes ``step_s`` seconds."""
    steps = -(-n_train // batch)
    return k / (steps * step_s + eval_s)


def pack_rate(ds, rc: RunConfig, device: torch.device, k: int, steps: int, warmup: int) -> dict:
    """K copies of ``rc`` (seeds rc.seed .. rc.seed+k-1) as one compiled-as-the-run wide
    step: seconds per step after ``warmup`` steps, and one evaluation at EVAL_BATCH."""
    rcs = [dataclasses.replace(rc, seed=rc.seed + i) for i in range(k)]
    dd = DeviceData(ds, device)
    state = fresh_pack(rcs, device)
    step, _ = make_pack_steps(state, dd, rc)
    plans = [dd.epoch_plan(gen) for gen in state.gens]
    perm, dy, dx, flip = (torch.stack(ts)[:, : rc.batch_size] for ts in zip(*plans, strict=True))
    spec, like = state.wide.spec, state.wide.fc1_weight
    n = perm.shape[1]

    def one():
        masks = dropout_masks(state.drop_gens, (n, spec.hidden), spec.dropout, like)
        return step(perm, dy, dx, flip, masks)

    state.wide.train()
    t0 = time.perf_counter()
    for _ in range(warmup):
        one()
    throughput.sync(device)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    losses = [one()[0] for _ in range(steps)]
    throughput.sync(device)
    step_s = (time.perf_counter() - t0) / steps
    finite = bool(torch.isfinite(torch.stack(losses)).all())
    evaluate_pack(state.wide, dd, EVAL_BATCH, rc.precision)  # warm-up
    t0 = time.perf_counter()
    evaluate_pack(state.wide, dd, EVAL_BATCH, rc.precision)
    eval_s = time.perf_counter() - t0
    rate = epochs_per_s(len(dd.y_train), rc.batch_size, step_s, eval_s, k)
    return dict(k=k, step_s=step_s, eval_s=eval_s, warmup_s=warmup_s, finite_loss=finite,
                epochs_per_s=rate)  # fmt: skip


def single_rate(ds, rc: RunConfig, device: torch.device, steps: int, warmup: int) -> dict:
    """One run in one process as train_run trains it (throughput.project_loop)."""
    res = throughput.project_loop(ds, rc, device, steps, warmup)
    res["k"] = 1
    res["epochs_per_s"] = 1.0 / (len(ds.y_train) / res["img_s"] + res["eval_s"])
    return res


def measure(run: Path, cache: Path, out: Path, layouts: list[str], steps: int) -> None:
    """Measure ``layouts`` (``ceiling``, ``single``, ``wide-K``) for the run description
    in ``run``; ``out`` is rewritten after each one."""
    # checked (bounded, every field typed and finite) before the device and data start
    rc = checked_any_size(read_description(str(run))).on_this_machine()
    device = setup_device(rc)
    ds = load_data(rc, cache)
    warmup = max(2, steps // 10) if rc.compile is False else max(3, steps // 5)

    def one(name: str) -> dict:
        if name == "ceiling":
            n, reps = (8192, 20) if device.type == "cuda" else (256, 3)
            flops = throughput.matmul_flops(device, torch.bfloat16, n, reps)
            return {"bf16_matmul_flops": flops, "n": n, "ok": True}
        if name == "single":
            res = single_rate(ds, rc, device, steps, warmup)
        else:
            res = pack_rate(ds, rc, device, int(name.split("-")[1]), steps, warmup)
        return {**res, "ok": res.get("finite_loss", True)}

    throughput.measure_each(layouts, one, out, "measured")
