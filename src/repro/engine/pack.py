"""Training a pack: K runs of one model shape trained together as one wide network
(repro.wide), each with its own lr, seed, data order, crops, flips and dropout masks, and
each written to its own run folder exactly as ``train_run`` writes it.

Every random draw of run k comes from where the single run takes it: its weights from
``fresh_state`` (the same function, so the same seed and order of draws), its data order
and augmentation from its own data generator (``DeviceData.epoch_plan``), and its
dropout masks from a generator that carries the global RNG state the single run's
dropout would draw from (on the CPU; a CUDA single run draws its masks inside a fused
kernel that this cannot reproduce, so there the masks are per-run but not the single
run's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..plan.settings import RunConfig
from .model import Net
from .train import (
    DeviceData,
    RunState,
    autocast_for,
    fresh_state,
    make_optimizer,
    record_epoch,
    scratch_problem,
)
from .wide import WideNet, dropout_masks, pack_tensors, tensor_map, unpack_tensors
from .wide_step import WideSGD, compile_step, make_wide_step

# the settings in which the runs of one pack may differ
PER_RUN = ("lr", "seed")
EVAL_BATCH = 1000  # on CPU, batch 1000 gives bitwise the single run's predictions


@dataclass
class PackState:
    """K runs between two epochs: the wide network and its optimizer, run k's data
    generator ``gens[k]`` and dropout generator ``drop_gens[k]``, and its history (as a
    single run's, ``RunState.history``)."""

    wide: WideNet
    opt: WideSGD
    gens: list[torch.Generator]
    drop_gens: list[torch.Generator]
    histories: list[dict]


def pack_problem(rcs: list[RunConfig]) -> str | None:
    """Why ``rcs`` cannot train as one pack, or None."""
    if not rcs:
        return "a pack needs at least one run"
    for f in fields(RunConfig):
        values = {repr(getattr(rc, f.name)) for rc in rcs}
        if f.name not in PER_RUN and len(values) > 1:
            return (
                f"the runs of a pack must share {f.name} (got {sorted(values)}); only "
                f"{' and '.join(PER_RUN)} may differ: pack runs of one setting together"
            )
    return None


def fresh_pack(rcs: list[RunConfig], device: torch.device) -> PackState:
    """K runs before their first epoch: each run's ``fresh_state`` (its weights and data
    generator, drawn from its seed as a single run's are), packed side by side. Run k's
    dropout generator starts where the global one stands after its weights were drawn,
    which is where the single run's dropout starts drawing."""
    states: list[RunState] = []
    drop_gens = []
    with torch.random.fork_rng(devices=[]):
        for rc in rcs:
            states.append(fresh_state(rc, device))
            drop_gens.append(_dropout_generator(rc, device))
    wide = WideNet.from_nets([s.model for s in states]).to(memory_format=torch.channels_last)
    opt = WideSGD(wide, [rc.lr for rc in rcs], rcs[0].momentum, rcs[0].weight_decay)
    return PackState(wide, opt, [s.gen for s in states], drop_gens, [s.history for s in states])


def _dropout_generator(rc: RunConfig, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device)
    if device.type == "cpu":
        gen.set_state(torch.get_rng_state())
    else:
        gen.manual_seed(rc.seed)
    return gen


def pack_epoch(step, last_step, dd: DeviceData, state: PackState, batch_size: int):
    """One pass over the training set for every run of the pack (as train_epoch: the
    last, smaller batch taken by ``last_step``); per run (losses, corrects, sizes)."""
    plans = [dd.epoch_plan(gen) for gen in state.gens]
    perm, dy, dx, flip = (torch.stack(ts) for ts in zip(*plans, strict=True))  # (K, n)
    spec = state.wide.spec
    like = state.wide.fc1_weight
    losses, corrects, sizes = [], [], []
    for batch in zip(*(t.split(batch_size, dim=1) for t in (perm, dy, dx, flip)), strict=True):
        n = batch[0].shape[1]
        masks = dropout_masks(state.drop_gens, (n, spec.hidden), spec.dropout, like)
        take = step if n == batch_size else last_step
        loss, correct = take(*batch, masks)
        losses.append(loss)
        corrects.append(correct)
        sizes.append(n)
    losses, corrects = torch.stack(losses).T.cpu().tolist(), torch.stack(corrects).T.cpu().tolist()
    return [(lo, co, sizes) for lo, co in zip(losses, corrects, strict=True)]


@torch.inference_mode()
def evaluate_pack(wide: WideNet, dd: DeviceData, batch: int, precision: str) -> list[tuple]:
    """Per run, what ``train.evaluate`` gives: test loss, accuracy, confusion counts and
    per-image class probabilities (CPU). The test batch is repeated K times along
    channels, one copy per run."""
    wide.eval()
    k, num_classes = wide.k, wide.spec.num_classes
    softmax_head = wide.spec.head == "softmax"
    loss_sums = torch.zeros(k, device=dd.device)  # the default dtype, as evaluate's
    probs = []
    for start in range(0, len(dd.y_test), batch):
        x, y = dd.x_test[start : start + batch], dd.y_test[start : start + batch]
        x = x.repeat(1, k, 1, 1).contiguous(memory_format=torch.channels_last)
        with autocast_for(dd.device, precision):
            out = wide(x).float()  # (K, N, classes)
        for r in range(k):
            loss_sums[r] += nn.functional.cross_entropy(out[r], y, reduction="sum")
        probs.append(out if softmax_head else torch.softmax(out, dim=2))
    n = len(dd.y_test)
    probs = torch.cat(probs, dim=1).cpu()
    results = []
    for r in range(k):
        pairs = dd.y_test.cpu() * num_classes + probs[r].argmax(1)
        confusion = torch.bincount(pairs, minlength=num_classes**2).view(num_classes, -1)
        acc = confusion.diagonal().sum().item() / n
        results.append((loss_sums[r].item() / n, acc, confusion, probs[r]))
    return results


def make_pack_steps(state: PackState, dd: DeviceData, rc: RunConfig):
    """The step for full batches (torch.compile'd whole when ``rc.compile``) and the
    eager one for the epoch's smaller last batch (as train.make_steps)."""
    step = make_wide_step(state.wide, state.opt, dd, rc.precision)
    if not rc.compile:
        return step, step
    return compile_step(step, rc.compile), step


def fit_pack(
    rcs: list[RunConfig],
    dd: DeviceData,
    state: PackState,
    keep_steps: bool = True,
    after_epoch: Callable[[PackState], None] | None = None,
    eval_batch: int = EVAL_BATCH,
) -> list[dict]:
    """Train the pack from its last completed epoch through the runs' epochs; returns the
    runs' histories, each as ``fit`` records a single run's (the epoch's seconds are the
    pack's: the K runs share them)."""
    rc0 = rcs[0]
    step, last_step = make_pack_steps(state, dd, rc0)
    for epoch in range(state.histories[0]["epoch"] + 1, rc0.epochs + 1):
        t0 = time.perf_counter()
        state.wide.train()
        per_run = pack_epoch(step, last_step, dd, state, rc0.batch_size)
        t_train = time.perf_counter() - t0
        tests = evaluate_pack(state.wide, dd, eval_batch, rc0.precision)
        seconds = time.perf_counter() - t0
        for rc, history, steps, test in zip(rcs, state.histories, per_run, tests, strict=True):
            record_epoch(
                history, epoch, steps, test, seconds, t_train, rc.lr if keep_steps else None
            )
        if after_epoch is not None:
            after_epoch(state)
    return state.histories


def run_states(rcs: list[RunConfig], state: PackState) -> list[dict]:
    """Per run, what a single run's checkpoint holds of it: Net weights (BN statistics
    included), SGD's state dict, its data and dropout generators' states."""
    nets = state.wide.unpack()
    bufs = unpack_tensors(state.wide, state.opt.buffers())
    out = []
    for rc, weights, buf, gen, drop in zip(
        rcs, nets, bufs, state.gens, state.drop_gens, strict=True
    ):
        net = Net(rc.model).to(dtype=state.wide.fc1_weight.dtype)
        net.load_state_dict(weights)
        opt = make_optimizer(net, rc)
        params = dict(net.named_parameters())
        for name, b in buf.items():
            opt.state[params[name]]["momentum_buffer"] = b
        out.append(
            {
                "model": weights,
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "dropout_rng": drop.get_state(),
            }
        )
    return out


def load_run_states(state: PackState, runs: list[dict]) -> None:
    """The inverse of ``run_states``: K runs' saved states into the pack."""
    nets = []
    for run in runs:
        net = Net(state.wide.spec).to(dtype=state.wide.fc1_weight.dtype)
        net.load_state_dict(run["model"])
        nets.append(net)
    packed = WideNet.from_nets(nets)
    state.wide.load_state_dict(packed.state_dict())
    names = [name for name, _ in nets[0].named_parameters()]
    if runs[0]["optimizer"]["state"]:
        bufs = [
            {names[i]: s["momentum_buffer"] for i, s in run["optimizer"]["state"].items()}
            for run in runs
        ]
        state.opt.load_buffers(_pack_by_wide_name(state.wide, bufs))
    for gen, drop, run in zip(state.gens, state.drop_gens, runs, strict=True):
        gen.set_state(run["generator"])
        drop.set_state(run["dropout_rng"])


def _pack_by_wide_name(wide: WideNet, per_run: list[dict]) -> dict[str, torch.Tensor]:
    return {
        w: pack_tensors([d[n] for d in per_run], how)
        for w, n, how in tensor_map(wide)
        if n in per_run[0]
    }


def check_pack(rcs: list[RunConfig], outs: list[Path], checkpoints, progress) -> None:
    """The pack's arguments, checked before any work."""
    problem = pack_problem(rcs)
    if problem:
        raise UserError(problem)
    for what, values in (("outs", outs), ("checkpoints", checkpoints), ("progress", progress)):
        if values is not None and len(values) != len(rcs):
            raise UserError(f"{what}: {len(values)} paths for {len(rcs)} runs; give one per run")
    if len({Path(o).resolve() for o in outs}) != len(outs):
        raise UserError("two runs of the pack write the same folder; give each its own --out")
    # a checkpoint is deleted when the pack is done: never another run's output file
    scratch = [("--checkpoints", c) for c in checkpoints or []]
    scratch += [("--progress", p) for p in progress or []]
    for flag, path in scratch:
        problem = scratch_problem(flag, Path(path), [Path(o) for o in outs])
        if problem:
            raise UserError(problem)
    if len({Path(p).resolve() for _, p in scratch}) != len(scratch):
        raise UserError(
            "two of the pack's checkpoints or progress files are one file; give each run its own"
        )


def describe(rcs: list[RunConfig]) -> str:
    return ", ".join(f"lr={rc.lr} seed={rc.seed}" for rc in rcs)
