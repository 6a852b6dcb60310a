"""The wide engine (issue 20): K runs as one network equal K separate runs.

Equality is proven in float64 (to 1e-12: only the summation order differs); float32 is
checked after one step (1e-5) and, over many steps, against the drift of the same single
run computed with 1 thread instead of 2 (training is chaotic: never against zero)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from repro.engine import data as data_mod
from repro.engine import pack_run
from repro.engine.model import Net
from repro.engine.pack import evaluate_pack, fresh_pack, pack_epoch, pack_problem, run_states
from repro.engine.pack_run import train_pack
from repro.engine.train import (
    DeviceData,
    Preempted,
    evaluate,
    fresh_state,
    make_step,
    train_epoch,
    train_run,
)
from repro.engine.wide import WideNet, dropout_masks
from repro.engine.wide_step import CAPTURE, gather_batch, make_wide_step
from repro.errors import UserError
from repro.plan import dataset
from repro.plan.settings import ModelSpec, RunConfig

SMALL = ModelSpec(widths=(4, 6, 8), kernel_sizes=(1, 3, 5), pool_after=(1, 2), hidden=16)
LRS_SEEDS = [(0.05, 3), (0.01, 7), (0.2, 11)]
# the block's other readings (model.gate, model.branch_norm), both in one shape: the wide
# pack of each layer they add (a second gate Linear, a BatchNorm per branch) is checked
OTHER_READINGS = replace(SMALL, gate="mlp", gate_hidden=5, branch_norm="per_branch")
READINGS = pytest.mark.parametrize(
    "spec", [SMALL, OTHER_READINGS], ids=["adopted", "mlp-gate-per-branch-bn"]
)


def runs(spec=SMALL, batch_size=16, pairs=LRS_SEEDS) -> list[RunConfig]:
    return [
        RunConfig(lr=lr, seed=seed, batch_size=batch_size, precision="fp32", model=spec)
        for lr, seed in pairs
    ]


def random_data(n_train=40, n_test=24, seed=0) -> DeviceData:
    """Tiny random images (uint8, all ten classes): 40 images at batch 16 give two full
    batches and a smaller last one."""
    rng = np.random.default_rng(seed)
    ds = data_mod.Dataset(
        x_train=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        y_train=np.arange(n_train, dtype=np.int64) % 10,
        x_test=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        y_test=rng.permutation(np.arange(n_test, dtype=np.int64) % 10),
        meta={},
    )
    return DeviceData(ds, torch.device("cpu"))


@contextlib.contextmanager
def default_dtype(dtype):
    """Nets and DeviceData built inside are in ``dtype`` (the data normalises with
    tensors of the default dtype)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def single_runs(rcs, dd, epochs, record=None):
    """The single-run path itself (fresh_state, make_step, train_epoch, evaluate), one
    run after the other; per run: its step results, test results, final state and the
    global RNG state its dropout ended at."""
    out = []
    for rc in rcs:
        state = fresh_state(rc, dd.device)
        step = make_step(state.model, state.opt, dd.device, rc.precision)
        if record is not None:
            step = record(step, len(out))
        results = []
        for _ in range(epochs):
            state.model.train()
            results.append(train_epoch(step, step, dd, state.gen, rc.batch_size))
            results.append(evaluate(state.model, dd, 1000, rc.precision, 10, True))
        out.append((results, state, torch.get_rng_state()))
    return out


def wide_runs(rcs, dd, epochs, record=None):
    state = fresh_pack(rcs, dd.device)
    step = make_wide_step(state.wide, state.opt, dd, rcs[0].precision)
    if record is not None:
        step = record(step)
    results = []
    for _ in range(epochs):
        state.wide.train()
        results.append(pack_epoch(step, step, dd, state, rcs[0].batch_size))
        results.append(evaluate_pack(state.wide, dd, 1000, rcs[0].precision))
    return results, state


def max_diff(a, b) -> float:
    """Largest absolute difference between two nests of numbers and tensors."""
    if isinstance(a, torch.Tensor):
        return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        return max((max_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return max((max_diff(a[k], b[k]) for k in a), default=0.0)
    return abs(float(a) - float(b))


@READINGS
def test_wide_network_equals_separate_runs_in_float64(spec):
    """K = 3 runs (different lr and seed; 2 for the block's other readings), 2 epochs of
    3 steps each (the last batch smaller), BatchNorm in train mode, dropout on, weight
    decay and momentum: every loss, accuracy, test output, weight, BN statistic and
    momentum buffer equals the separate runs' to 1e-12, and each run saw exactly its own
    batches and dropout masks."""
    seen_single: dict = {}
    seen_wide: list = []

    def record_single(step, k):
        def recorded(x, y):
            seen_single.setdefault(k, []).append((x.clone(), y.clone()))
            return step(x, y)

        return recorded

    def record_wide(step):
        def recorded(idx, dy, dx, flip, masks):
            seen_wide.append(gather_batch(dd, idx, dy, dx, flip))
            return step(idx, dy, dx, flip, masks)

        return recorded

    # the other readings' layers need no third run to show per-run slices (time: K = 2)
    rcs = runs(spec, pairs=LRS_SEEDS if spec == SMALL else LRS_SEEDS[:2])
    with default_dtype(torch.float64):
        dd = random_data()
        single = single_runs(rcs, dd, epochs=2, record=record_single)
        results, state = wide_runs(rcs, dd, epochs=2, record=record_wide)
    assert state.wide.fc1_weight.dtype == torch.float64
    # the batches: crops, flips, order and labels bitwise the single runs'
    assert len(seen_wide) == len(seen_single[0]) == 6
    for k in range(len(rcs)):
        for (x_wide, y_wide), (x, y) in zip(seen_wide, seen_single[k], strict=True):
            assert torch.equal(x_wide[:, 3 * k : 3 * k + 3], x) and torch.equal(y_wide[k], y)
    saved = run_states(rcs, state)
    # the trained networks' own float64 outputs (evaluate's are cast to float32)
    with default_dtype(torch.float64), torch.no_grad():
        x = dd.x_test
        wide_out = state.wide.eval()(x.repeat(1, len(rcs), 1, 1))
        for k, (_, single_state, _) in enumerate(single):
            assert wide_out.dtype == torch.float64
            assert max_diff(wide_out[k], single_state.model.eval()(x)) < 1e-12
    for k, (res, single_state, rng) in enumerate(single):
        wide_res = [results[0][k], results[1][k], results[2][k], results[3][k]]
        assert max_diff(wide_res, res) < 1e-12
        assert max_diff(saved[k]["model"], single_state.model.state_dict()) < 1e-12
        assert (
            max_diff(saved[k]["optimizer"]["state"], single_state.opt.state_dict()["state"]) < 1e-12
        )
        assert torch.equal(saved[k]["generator"], single_state.gen.get_state())
        # the dropout generator drew exactly what the single run's dropout drew
        assert torch.equal(saved[k]["dropout_rng"], rng)
    # and the runs really differ (a pack of copies would pass the above trivially)
    assert (
        max_diff(saved[0]["model"]["classifier.5.weight"], saved[1]["model"]["classifier.5.weight"])
        > 1e-3
    )


def test_dropout_masks_are_nn_dropouts():
    h = torch.randn(5, 7, dtype=torch.float64)
    torch.manual_seed(4)
    gen = torch.Generator().set_state(torch.get_rng_state())
    expected = nn.functional.dropout(h, 0.5, training=True)
    masks = dropout_masks([gen], (5, 7), 0.5, h)
    assert torch.equal(h * masks[0], expected)
    assert dropout_masks([gen], (5, 7), 0.0, h) is None


@READINGS
def test_pack_and_unpack_are_inverse(spec):
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = Net(spec)
        for m in net.modules():  # non-trivial running statistics
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_()
                m.running_var.uniform_(1, 2)
                m.num_batches_tracked += 5
        nets.append(net)
    wide = WideNet.from_nets(nets)
    for net, unpacked in zip(nets, wide.unpack(), strict=True):
        sd = net.state_dict()
        assert list(unpacked) == list(sd)
        assert all(torch.equal(unpacked[name], t) for name, t in sd.items())


def test_runs_of_a_pack_may_differ_only_in_lr_and_seed():
    rcs = runs()
    assert pack_problem(rcs) is None
    other = RunConfig(lr=0.1, seed=1, batch_size=32, precision="fp32", model=SMALL)
    assert "batch_size" in pack_problem([rcs[0], other])
    assert "at least one" in pack_problem([])


def test_float32_one_step_is_within_1e_5_of_the_separate_runs():
    rcs = runs()
    dd = random_data(n_train=16)  # one step per epoch
    single = single_runs(rcs, dd, epochs=1)
    results, state = wide_runs(rcs, dd, epochs=1)
    saved = run_states(rcs, state)
    for k, (res, single_state, _) in enumerate(single):
        assert max_diff(results[0][k], res[0]) < 1e-5  # loss and accuracy of the step
        assert max_diff(saved[k]["model"], single_state.model.state_dict()) < 1e-5
        assert max_diff(results[1][k][:2], res[1][:2]) < 1e-5  # test loss and accuracy


def weight_trajectories(rcs, dd, epochs, wide: bool, threads: int = 2) -> list[list[dict]]:
    """Per run, its weights after every epoch: the wide pack's or the single runs'
    computed with ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = [[] for _ in rcs]
        if wide:
            state = fresh_pack(rcs, dd.device)
            step = make_wide_step(state.wide, state.opt, dd, "fp32")
            for _ in range(epochs):
                pack_epoch(step, step, dd, state, rcs[0].batch_size)
                for k, run in enumerate(run_states(rcs, state)):
                    out[k].append(run["model"])
            return out
        for k, rc in enumerate(rcs):
            state = fresh_state(rc, dd.device)
            step = make_step(state.model, state.opt, dd.device, "fp32")
            for _ in range(epochs):
                train_epoch(step, step, dd, state.gen, rc.batch_size)
                out[k].append({n: t.clone() for n, t in state.model.state_dict().items()})
        return out
    finally:
        torch.set_num_threads(before)


def drifts(runs_a, runs_b) -> np.ndarray:
    """(run, epoch) -> largest weight difference between two sets of trajectories."""
    return np.array(
        [
            [max_diff(a, b) for a, b in zip(run_a, run_b, strict=True)]
            for run_a, run_b in zip(runs_a, runs_b, strict=True)
        ]
    )


def test_float32_drift_is_no_more_than_the_thread_count_drift():
    """18 steps in float32. The wide pack differs from the separate runs only in
    summation order, as the same single run on 1 thread differs from it on 2: both
    perturbations start at rounding level and grow chaotically (to 1e-3 here). Per run and
    epoch, drift = largest weight difference from the 2-thread single run; the geometric
    mean of wide/thread drift ratios must be at most 1.5 (measured: 0.74 on an AMD
    EPYC, torch 2.14), and no ratio may exceed 10 (a real difference is far above it at
    the first epoch: measured, an lr 1 % off gives 256, swapped dropout masks 4e4)."""
    rcs = runs()
    dd = random_data(n_train=40)
    reference = weight_trajectories(rcs, dd, 6, wide=False, threads=2)
    one_thread = weight_trajectories(rcs, dd, 6, wide=False, threads=1)
    wide = weight_trajectories(rcs, dd, 6, wide=True)
    thread_drift = drifts(one_thread, reference)
    wide_drift = drifts(wide, reference)
    assert (thread_drift > 0).all(), (
        "1 and 2 threads must differ for this comparison to mean anything"
    )
    ratios = wide_drift / thread_drift
    geomean = np.exp(np.log(ratios).mean())
    print(f"thread drift {thread_drift.max(1)}, wide {wide_drift.max(1)}, ratio {geomean:.2f}")
    assert geomean <= 1.5, ratios
    assert ratios.max() <= 10, ratios


RUN_CSVS = ("epochs.csv", "steps.csv", "confusion.csv", "confusion_by_epoch.csv", "predictions.csv")


def tiny_runs(pairs=((0.05, 0), (0.01, 1)), spec=SMALL, epochs=2) -> list[RunConfig]:
    return [
        RunConfig(lr=lr, seed=seed, epochs=epochs, batch_size=64, precision="fp32", model=spec)
        for lr, seed in pairs
    ]


def csv_numbers(path) -> tuple[str, np.ndarray]:
    """A CSV's header and its numbers (the confusion matrix's class names dropped)."""
    header, *rows = path.read_text().splitlines()
    cells = [c for row in rows for c in row.split(",")]
    return header, np.array([float(c) for c in cells if c not in dataset.CLASSES])


def test_pack_writes_the_single_runs_folders(tiny_cache, tmp_path):
    """Two small runs, 2 epochs on the 300-image cache, in float64: the pack's run folders
    hold the files train_run writes, and every number in them (the CSVs, the weights,
    the metrics) equals the single runs' to 1e-10. The CSVs print rounded numbers, so
    the weights (model.pt) and the metrics' unrounded losses are the precise check.
    Kernels 1 and 3 only: float64 convolutions are slow on the CPU, and the 5x5 branch
    is covered by the first test."""
    rcs = tiny_runs(spec=replace(SMALL, kernel_sizes=(1, 3)))
    singles = [tmp_path / f"single{i}" for i in range(2)]
    packed = [tmp_path / f"packed{i}" for i in range(2)]
    with default_dtype(torch.float64):
        for rc, out in zip(rcs, singles, strict=True):
            train_run(rc, tiny_cache, out)
        train_pack(rcs, tiny_cache, packed)
    for slot, (single, pack) in enumerate(zip(singles, packed, strict=True)):
        assert sorted(p.name for p in pack.iterdir()) == sorted(p.name for p in single.iterdir())
        for name in RUN_CSVS:
            (h1, a), (h2, b) = csv_numbers(single / name), csv_numbers(pack / name)
            assert h1 == h2 and a.shape == b.shape and np.abs(a - b).max() <= 1e-10, name
        assert (
            csv_numbers(single / "epoch_times.csv")[0] == csv_numbers(pack / "epoch_times.csv")[0]
        )
        w1 = torch.load(single / "model.pt", weights_only=True)
        w2 = torch.load(pack / "model.pt", weights_only=True)
        assert w2["classifier.1.weight"].dtype == torch.float64
        assert max_diff(w1, w2) <= 1e-10
        m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (single, pack))
        assert m2.pop("layout") == {"k": 2, "slot": slot}
        assert m1.keys() == m2.keys()
        for key in ("final_test_acc", "final_train_loss", "final_test_loss", "best_epoch"):
            assert abs(m1[key] - m2[key]) <= 1e-10, key
        assert m1["fingerprint"] == m2["fingerprint"] and m1["config"] == m2["config"]


def test_stopped_pack_resumes_to_the_same_bytes(tiny_cache, tmp_path, monkeypatch, capsys):
    """A pack stopped after epoch 1 (as SIGTERM or a killed workflow stops it) keeps one
    checkpoint per run and no run folder; rerun, it resumes there and writes the same
    bytes as an uninterrupted pack (float32, CPU)."""
    rcs = tiny_runs()
    ref = [tmp_path / f"ref{i}" for i in range(2)]
    train_pack(rcs, tiny_cache, ref)
    outs = [tmp_path / f"run{i}" for i in range(2)]
    cks = [tmp_path / "ck" / f"run{i}.pt" for i in range(2)]
    progress = [tmp_path / "progress" / f"run{i}.json" for i in range(2)]

    def stop_after_epoch_1(ancestry, epoch, epochs):
        if epoch == 1:
            raise Preempted("a test")

    with monkeypatch.context() as m:
        m.setattr(pack_run, "stop_if_orphaned", stop_after_epoch_1)
        with pytest.raises(SystemExit) as stop:
            train_pack(rcs, tiny_cache, outs, cks, progress, checkpoint_every=0)
    assert stop.value.code == 143
    assert all(ck.exists() for ck in cks) and not any(out.exists() for out in outs)
    assert [json.loads(p.read_text())["state"] for p in progress] == ["stopped"] * 2
    saved = torch.load(cks[1], weights_only=True)
    assert saved["history"]["epoch"] == 1 and "steps" not in saved["history"]
    assert saved["layout"] == {"k": 2, "slot": 1} and saved["steps"].shape == (
        5,
        5,
    )  # 300 images / 64
    alone = tmp_path / "alone.pt"
    alone.write_bytes(cks[1].read_bytes())
    train_pack(rcs, tiny_cache, outs, cks, progress, checkpoint_every=0)
    for r, o in zip(ref, outs, strict=True):
        for name in (*RUN_CSVS, "model.pt"):
            assert (r / name).read_bytes() == (o / name).read_bytes(), name
    assert not any(ck.exists() for ck in cks)
    assert [json.loads(p.read_text())["state"] for p in progress] == ["done"] * 2
    # the layout is not the run's identity: slot 1 of a pack of 2 resumes as a pack of 1
    train_pack(rcs[1:], tiny_cache, [tmp_path / "alone"], [alone])
    assert "pack resumed after epoch 1" in capsys.readouterr().err
    first_epoch = lambda d: (d / "epochs.csv").read_text().splitlines()[:2]  # noqa: E731
    assert first_epoch(tmp_path / "alone") == first_epoch(ref[1])
    metrics = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert metrics["layout"] == {"k": 1, "slot": 0} and metrics["epochs"] == 2


def test_checkpoints_wait_for_checkpoint_every(tiny_cache, tmp_path, monkeypatch):
    """With the default minute between checkpoints, a pack of seconds-long epochs
    writes none (a stop then loses less than a minute of work)."""
    written = []
    monkeypatch.setattr(pack_run, "save_pack", lambda *a: written.append(a))
    cks = [tmp_path / f"run{i}.pt" for i in range(2)]
    rcs = tiny_runs(epochs=1)
    train_pack(rcs, tiny_cache, [tmp_path / "a", tmp_path / "b"], cks)
    assert written == []
    train_pack(rcs, tiny_cache, [tmp_path / "c", tmp_path / "d"], cks, checkpoint_every=0)
    assert len(written) == 1


def test_pack_of_mixed_settings_is_refused_before_work(tiny_cache, tmp_path):
    rcs = [tiny_runs()[0], replace(tiny_runs()[1], momentum=0.5)]
    with pytest.raises(UserError, match="must share momentum"):
        train_pack(rcs, tiny_cache, [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(UserError, match="same folder"):
        train_pack(tiny_runs(), tiny_cache, [tmp_path / "a", tmp_path / "a"])
    assert not (tmp_path / "a").exists()


def test_a_checkpoint_on_a_run_output_is_refused_before_anything_is_deleted(tiny_cache, tmp_path):
    """train-pack deletes its checkpoints when done: a checkpoint path naming another
    run's output file (deleted, exit 0, before) or one inside a run folder of the pack is
    refused before any work, and the file is kept."""
    done = tmp_path / "done"
    done.mkdir()
    (done / "metrics.json").write_text('{"kept": true}')
    outs = [tmp_path / "a", tmp_path / "b"]
    for cks, where in (
        ([done / "metrics.json", tmp_path / "k1.pt"], "another run"),
        ([tmp_path / "k0.pt", outs[0] / "epochs.csv"], "the run folder"),
        ([tmp_path / "k.pt", tmp_path / "k.pt"], "are one file"),
    ):
        with pytest.raises(UserError, match=where):
            train_pack(tiny_runs(), tiny_cache, outs, cks)
    with pytest.raises(UserError, match="another run"):
        train_run(tiny_runs()[0], tiny_cache, outs[0], done / "epochs.csv")
    assert (done / "metrics.json").read_text() == '{"kept": true}'
    assert not outs[0].exists() and not outs[1].exists()


def test_the_whole_step_is_one_graph_for_torch_compile():
    """Gather, forward, per-run losses, backward, SGD update and accuracy: Dynamo
    captures the step as one graph with no break (explain traces without compiling,
    seconds instead of the minute inductor takes here)."""
    rcs = runs()
    dd = random_data(n_train=16)
    state = fresh_pack(rcs, dd.device)
    step = make_wide_step(state.wide, state.opt, dd, "fp32")
    perm, dy, dx, flip = (
        torch.stack(ts) for ts in zip(*(dd.epoch_plan(g) for g in state.gens), strict=True)
    )
    masks = dropout_masks(state.drop_gens, (16, SMALL.hidden), SMALL.dropout, state.wide.fc1_weight)
    with torch._dynamo.config.patch(**CAPTURE):
        explained = torch._dynamo.explain(step)(perm, dy, dx, flip, masks)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_a_stop_inside_a_checkpoint_save_leaves_one_epoch_for_all_runs(tmp_path):
    """save_pack writes all K files, then renames them: a stop while writing keeps the
    old epoch for every run, a stop while renaming finishes at the new one; never runs
    at two epochs (which could not resume together)."""
    rcs = runs()[:2]
    state = fresh_pack(rcs, torch.device("cpu"))
    cks = [tmp_path / f"run{i}.pt" for i in range(2)]
    saved = {}
    for epoch in (1, 2):
        for history in state.histories:
            history["epoch"] = epoch
        pack_run.save_pack(cks, rcs, "data", state)
        saved[epoch] = [ck.read_bytes() for ck in cks]
    epochs = lambda found: [ck["history"]["epoch"] for ck in found]  # noqa: E731
    # stopped while writing: run 0's new file written, run 1's not yet
    for ck, old in zip(cks, saved[1], strict=True):
        ck.write_bytes(old)
    pack_run._next(cks[0]).write_bytes(saved[2][0])
    assert epochs(pack_run.pending_checkpoints(cks)) == [1, 1]
    assert not pack_run._next(cks[0]).exists() and cks[0].read_bytes() == saved[1][0]
    # stopped while renaming: run 0 renamed, run 1's new file still beside the old one
    cks[0].write_bytes(saved[2][0])
    pack_run._next(cks[1]).write_bytes(saved[2][1])
    assert epochs(pack_run.pending_checkpoints(cks)) == [2, 2]
    assert not pack_run._next(cks[1]).exists() and cks[1].read_bytes() == saved[2][1]


PACK_SCRIPT = """
import json, sys
from repro.engine.pack_run import train_pack
from repro.plan.settings import RunConfig
args = json.loads(sys.argv[1])
rcs = [RunConfig.from_dict(d) for d in args["runs"]]
train_pack(rcs, args["cache"], args["outs"], args["checkpoints"], checkpoint_every=0)
"""


def test_killed_pack_process_resumes_to_the_same_bytes(tiny_cache, tmp_path, capsys):
    """SIGKILL a real pack process once its epoch-1 checkpoints exist (no handler runs),
    rerun it: the same bytes as an uninterrupted pack."""
    rcs = [replace(rc, epochs=3) for rc in tiny_runs()]
    ref = [tmp_path / f"ref{i}" for i in range(2)]
    train_pack(rcs, tiny_cache, ref)
    outs = [tmp_path / f"run{i}" for i in range(2)]
    cks = [tmp_path / "ck" / f"run{i}.pt" for i in range(2)]
    args = {"runs": [asdict(rc) for rc in rcs], "cache": str(tiny_cache)}
    args |= {"outs": [str(o) for o in outs], "checkpoints": [str(c) for c in cks]}
    proc = subprocess.Popen(
        [sys.executable, "-c", PACK_SCRIPT, json.dumps(args)], stderr=subprocess.PIPE, text=True
    )
    t0 = time.time()
    while not all(ck.exists() for ck in cks):
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - t0 < 120, "no checkpoints"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not any((o / "metrics.json").exists() for o in outs)
    capsys.readouterr()
    train_pack(rcs, tiny_cache, outs, cks)
    assert "pack resumed after epoch" in capsys.readouterr().err
    for r, o in zip(ref, outs, strict=True):
        for name in (*RUN_CSVS, "model.pt"):
            assert (r / name).read_bytes() == (o / name).read_bytes(), name


def test_wide_check_finds_two_deterministic_passes_equal_and_a_changed_one_not(
    tiny_cache, tmp_path
):
    """The GPU machine's equality check (python -m repro wide-check), run here on the CPU:
    two deterministic passes of one pack are bitwise equal; a pass with one seed changed
    is not, and the check names the tensors that differ."""
    from repro.cli import main
    from repro.engine import wide_check

    rcs = tiny_runs(epochs=1)
    desc = tmp_path / "run.json"
    desc.write_text(json.dumps(asdict(rcs[0])))
    assert main(["wide-check", "--run", str(desc), "--cache", str(tiny_cache),
                 "--out", str(tmp_path / "check.json"), "--images", "64"]) == 0  # fmt: skip
    res = json.loads((tmp_path / "check.json").read_text())
    assert res["bitwise_equal"] and res["k"] == 2 and res["images"] == 64
    assert res["tensors"] > 20 and res["max_abs_difference"] == 0.0
    dd = DeviceData(data_mod.load(tiny_cache), torch.device("cpu"))
    other = [replace(rcs[0], seed=7), rcs[1]]
    diff = wide_check.compare(wide_check.one_pass(rcs, dd), wide_check.one_pass(other, dd))
    assert not diff["bitwise_equal"] and not diff["losses_equal"]
    assert diff["differing_tensors"] and diff["max_abs_difference"] > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--k", "0"], "use a pack of 1-64 runs"),
        (["--k", "65"], "use a pack of 1-64 runs"),
        # a count out of range is refused as the options are read
        (["--images", "1"], "--images: '1' is not allowed; give a number in [2, 1e+07]"),
    ],
)
def test_wide_check_refuses_a_pack_it_cannot_train_in_one_line(flags, message, tmp_path, capsys):
    from repro.cli import main

    args = ["wide-check", "--run", "x.json", "--cache", "x.npz", "--out", str(tmp_path / "o")]
    try:
        status = main([*args, *flags])
    except SystemExit as e:  # argparse's exit, after its one line
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "change, message",
    [({"epochs": float("nan")}, "epochs = nan is not allowed"), ({"model": 5}, "no description")],
)
def test_wide_check_refuses_a_forged_description_in_one_line(change, message, tmp_path, capsys):
    """--run is checked as a queued run is, before the cache is read (a missing model
    field was a KeyError's traceback; a NaN count reached the training)."""
    from repro.cli import main

    desc = tmp_path / "run.json"
    desc.write_text(json.dumps({**asdict(tiny_runs(epochs=1)[0]), **change}))
    args = ["wide-check", "--run", str(desc), "--cache", "x.npz", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wide-check --run" in err[0] and message in err[0]
    assert not (tmp_path / "o").exists()
