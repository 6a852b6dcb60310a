"""The wide pack's GPU equality check: in deterministic mode, two trainings of the same wide
pack are bitwise equal (every weight, BatchNorm statistic, momentum buffer, loss and
test prediction). On the CPU this holds for any arithmetic; on a GPU it is what
``train.cuda_deterministic`` promises, and a cuDNN or cuBLAS kernel that is not
deterministic (or a grouped convolution that picks another algorithm) breaks it.

A short pass: one epoch over the first ``images`` training images, eager (compiling
would cost more than the check), then the test set, twice from fresh generators.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..errors import UserError
from ..files import write_atomic
from ..plan.description import checked_any_size, read_description
from ..plan.settings import RunConfig
from . import data as data_mod
from .pack import EVAL_BATCH, evaluate_pack, fresh_pack, make_pack_steps, pack_epoch
from .train import DeviceData, load_data, setup_device


def deterministic_twice(rcs: list[RunConfig], cache: Path, images: int) -> dict:
    """Train the pack ``rcs`` for one epoch on ``images`` training images twice, in
    deterministic mode and eager; compare the two bitwise."""
    rcs = [
        dataclasses.replace(rc.on_this_machine(), deterministic=True, compile=False, epochs=1)
        for rc in rcs
    ]
    device = setup_device(rcs[0])
    ds = load_data(rcs[0], cache)
    keep = min(images, len(ds.y_train))
    keep -= keep % rcs[0].batch_size == 1  # no last batch of one image (BatchNorm)
    ds = data_mod.Dataset(ds.x_train[:keep], ds.y_train[:keep], ds.x_test, ds.y_test, ds.meta)
    dd = DeviceData(ds, device)
    result = compare(one_pass(rcs, dd), one_pass(rcs, dd))
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    return {"device": str(device), "device_name": name, "k": len(rcs), "images": keep, **result}


def compare(a, b) -> dict:
    """Two passes (``one_pass``) compared bitwise: tensors, per-step losses, test results."""
    (ta, losses_a, tests_a), (tb, losses_b, tests_b) = a, b
    differing = sorted(k for k in ta if not torch.equal(ta[k], tb[k]))
    biggest = max(
        ((ta[k].double() - tb[k].double()).abs().max().item() for k in differing), default=0.0
    )
    # per run: test loss, accuracy, confusion counts, class probabilities
    same_tests = all(
        x[:2] == y[:2] and torch.equal(x[2], y[2]) and torch.equal(x[3], y[3])
        for x, y in zip(tests_a, tests_b, strict=True)
    )
    return {
        "tensors": len(ta),
        "bitwise_equal": not differing and losses_a == losses_b and same_tests,
        "differing_tensors": differing[:20],
        "max_abs_difference": biggest,
        "losses_equal": losses_a == losses_b,
        "test_outputs_equal": same_tests,
    }


def one_pass(rcs: list[RunConfig], dd: DeviceData):
    """One epoch of the pack from fresh, then the test set: (every state tensor, each
    run's per-step losses, each run's test results)."""
    state = fresh_pack(rcs, dd.device)
    step, last_step = make_pack_steps(state, dd, rcs[0])
    state.wide.train()
    per_run = pack_epoch(step, last_step, dd, state, rcs[0].batch_size)
    tests = evaluate_pack(state.wide, dd, EVAL_BATCH, rcs[0].precision)
    tensors = {f"wide.{k}": v.detach().clone() for k, v in state.wide.state_dict().items()}
    for name, buf in zip(state.opt.names, state.opt.bufs, strict=True):
        tensors[f"momentum.{name}"] = buf.detach().clone()
    return tensors, [losses for losses, _, _ in per_run], tests


def check(run: Path, cache: Path, k: int, images: int, out: Path) -> dict:
    """The check for ``k`` runs of the description in ``run`` (seeds 0..k-1, the lr of
    the description), written to ``out`` as JSON."""
    # checked as a queued run is (the device command passes its stand-in models too)
    try:
        base = checked_any_size(read_description(str(run)))
    except UserError as err:
        raise UserError(f"wide-check --run {run}: {err}") from None
    rcs = [dataclasses.replace(base, seed=seed) for seed in range(k)]
    result = deterministic_twice(rcs, cache, images)
    write_atomic(out, json.dumps(result, indent=2) + "\n")
    return result
