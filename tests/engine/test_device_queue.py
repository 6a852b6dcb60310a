"""The queue mode of the device command: reading the queue, the plan that fits whole
runs in priority order (on inputs whose answer is known), the private MPS daemon (with a
fake control command), and the layouts' measurement with the compiled wide step on the
CPU (a tiny shape)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat

import pytest

from repro.engine import data as data_mod
from repro.engine.device_queue import (
    QueuedRun,
    choose_layout,
    fit,
    make_jobs,
    makespan,
    plan_with_check,
    plan_with_data,
    read_queue,
    trained_hash,
)
from repro.engine.layouts import measure
from repro.engine.mps import mps_daemon
from repro.engine.pack import pack_problem
from repro.errors import UserError
from repro.plan.settings import ModelSpec, RunConfig


def queued(lr, seed, epochs=10, widths=(4, 6, 8)) -> QueuedRun:
    rc = RunConfig(lr=lr, seed=seed, device="cpu", epochs=epochs, precision="fp32",
                   model=ModelSpec(widths=widths, pool_after=(1, 2)))  # fmt: skip
    return QueuedRun(rc, f"results/runs/softmax/lr{lr}/cpu/seed{seed}/0000000{seed}", "v", {})


def test_jobs_pack_only_runs_of_one_setting_in_queue_order():
    runs = [queued(0.01, 1), queued(0.01, 2, widths=(8, 8, 8)), queued(0.005, 1), queued(0.001, 1)]
    jobs = make_jobs(runs, 2)
    assert [[r.folder for r in j] for j in jobs] == [
        [runs[0].folder, runs[2].folder],
        [runs[1].folder],
        [runs[3].folder],
    ]
    for job in jobs:
        assert pack_problem([r.rc for r in job]) is None


def test_plan_fits_whole_runs_by_priority():
    runs = [queued(0.01, s) for s in range(1, 6)]  # five runs of 10 epochs
    # wide-2 at 1 epoch/s in all: a pack of 2 runs takes 20 s (+2 s warm-up)
    wide = {"epochs_per_s": 1.0, "width": 2, "slots": 1, "warmup_s": 2.0, "name": "wide-2"}
    assert makespan([22.0, 22.0, 12.0], 1) == 56.0
    assert [len(j) for j in fit(runs, wide, 44.0)] == [2, 2]
    # 43 s: the second pack does not fit; a pack of one is estimated at the full pack's
    # per-run rate (it is not slower), 22 s: it does not fit either, so no half pack
    assert [len(j) for j in fit(runs, wide, 43.0)] == [2]
    # the fifth run alone: 44 + 22 s
    assert [len(j) for j in fit(runs, wide, 66.0)] == [2, 2, 1]
    assert fit(runs, wide, 5.0) == []
    # the fallback: 2 processes at 1.5 epochs/s together, each run at 0.75 epochs/s
    layouts = {
        "single": {"ok": True, "epochs_per_s": 0.5, "width": 1, "slots": 1, "warmup_s": 0},
        "wide-2": {"ok": True, "epochs_per_s": 1.0, "width": 2, "slots": 1, "warmup_s": 2.0},
        "procs-2": {"ok": True, "epochs_per_s": 1.5, "width": 1, "slots": 2, "warmup_s": 0},
        "wide-4": {"ok": False, "error": "x"},
        "ceiling": {"ok": True, "bf16_matmul_flops": 1e12},
    }
    layout, jobs = choose_layout(runs, layouts, 30.0)
    # procs-2: 2 runs in 13.3 s, 4 runs in 26.7 s; wide-2: 2 runs in 22 s
    assert layout["name"] == "procs-2" and sum(len(j) for j in jobs) == 4
    layout, jobs = choose_layout(runs, layouts, 30.0, only="wide-2")
    assert layout["name"] == "wide-2" and sum(len(j) for j in jobs) == 2
    with pytest.raises(RuntimeError):
        choose_layout(runs, {"wide-4": layouts["wide-4"]}, 30.0)


def test_plan_leaves_time_for_the_data_of_the_runs_it_plans():
    """Four runs of the reference data then two of a re-encoded variant, 10 s each alone:
    with 60 s the first plan takes all six, whose variant cache (15 s) is not ready; the
    plan then fits in 45 s: the four reference runs only, which need no new cache."""
    runs = [queued(0.01, s) for s in range(1, 5)]
    runs += [dataclasses.replace(queued(0.005, s), data={"jpeg_quality": 50}) for s in (5, 6)]
    layouts = {"single": {"ok": True, "epochs_per_s": 1.0, "width": 1, "slots": 1}}
    ready = {json.dumps({}, sort_keys=True)}
    layout, jobs = plan_with_data(runs, layouts, 60.0, 15.0, ready)
    assert [r.rc.seed for j in jobs for r in j] == [1, 2, 3, 4]
    # with the variant's cache ready, all six fit
    ready.add(json.dumps({"jpeg_quality": 50}, sort_keys=True))
    layout, jobs = plan_with_data(runs, layouts, 60.0, 15.0, ready)
    assert len([r for j in jobs for r in j]) == 6


def test_the_wide_check_keeps_its_time_only_where_no_run_is_lost():
    """The H200's rates (BENCHMARKS.md): alone 0.502 epochs/s, two processes under MPS
    0.862 together, 35.7 s of compile; 150-epoch runs. 415 s hold two MPS runs (384 s)
    but 415 - 45 do not: the check is not run. 480 s hold them with the check's 45 s
    kept back: the check runs, after them. A plan that trains nothing loses nothing."""
    runs = [queued(0.01, s, epochs=150) for s in range(1, 5)]
    layouts = {
        "single": {"ok": True, "epochs_per_s": 0.502, "width": 1, "slots": 1, "warmup_s": 35.7},
        "procs-2": {"ok": True, "epochs_per_s": 0.862, "width": 1, "slots": 2, "warmup_s": 35.7},
    }
    ready = {json.dumps({}, sort_keys=True)}
    layout, jobs, check = plan_with_check(runs, layouts, 415.0, 20.0, ready, None, 45.0)
    assert (layout["name"], sum(map(len, jobs)), check) == ("procs-2", 2, False)
    layout, jobs, check = plan_with_check(runs, layouts, 480.0, 20.0, ready, None, 45.0)
    assert (layout["name"], sum(map(len, jobs)), check) == ("procs-2", 2, True)
    # no check asked for: the plan is plan_with_data's
    assert plan_with_check(runs, layouts, 415.0, 20.0, ready)[:2] == plan_with_data(
        runs, layouts, 415.0, 20.0, ready
    )
    # too little for any run: nothing is lost by checking
    layout, jobs, check = plan_with_check(runs, layouts, 200.0, 20.0, ready, None, 45.0)
    assert (jobs, check) == ([], True)


def folder_of(r: QueuedRun, archive, data=None) -> str:
    """The run's folder with the settings hash of its description on ``data``."""
    h = trained_hash(r.rc, r.data if data is None else data, archive)
    return r.folder[: -len("00000001")] + h


@pytest.fixture
def travelled(tmp_path):
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(b"a stand-in for the archive that travelled with the checkout")
    return path


def test_queue_is_read_and_checked(tmp_path, travelled):
    data = {"subset": None}
    entry = {
        "variant": "paper",
        "folder": folder_of(queued(0.01, 1), travelled, data),
        "description": dataclasses.asdict(queued(0.01, 1).rc),
    }
    path = tmp_path / "queue.json"
    # the announced format's "run" key is read as the colleague's "description"
    other = {**entry, "folder": folder_of(queued(0.005, 2), travelled, data)}
    other["run"] = {**entry["description"], "lr": 0.005, "seed": 2}
    del other["description"]
    path.write_text(json.dumps({"runs": [entry, other]}))
    runs = read_queue(path, "cpu", data, travelled)
    assert [(r.rc.lr, r.rc.seed, r.data) for r in runs] == [
        (0.01, 1, {"subset": None}),
        (0.005, 2, {"subset": None}),
    ]
    with pytest.raises(UserError, match="this command trains on cuda"):
        read_queue(path, "cuda", {}, travelled)
    moved = {**entry, "folder": folder_of(queued(0.005, 1), travelled, data)}
    path.write_text(json.dumps({"runs": [moved]}))
    with pytest.raises(UserError, match="does not name its run"):
        read_queue(path, "cpu", {}, travelled)
    path.write_text(json.dumps({"runs": [entry, entry]}))
    with pytest.raises(UserError, match="twice"):
        read_queue(path, "cpu", {}, travelled)
    path.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a queue"):
        read_queue(path, "cpu", {}, travelled)


def test_a_queued_folder_must_carry_its_own_settings_hash(tmp_path):
    """The queue `repro queue` writes for a study with an fp32 cause beside a bf16
    reference is read as it is (the device hashes each description on its data as the
    planner did); the bf16 reference's run put into the fp32 cause's folder (head, rate,
    device and seed all right) is refused: it would be recorded and counted as fp32."""
    from conftest import ARCHIVE, tiny_config

    from repro.plan import queue as queue_mod

    cfg = tiny_config(
        train={"epochs": 2, "precision": "bf16"},
        variants=[{"name": "fp32", "reason": "r", "train": {"precision": "fp32"}}],
    )
    runs, _ = queue_mod.missing_runs(cfg, tmp_path)
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": runs}))
    read = read_queue(path, "cpu", {}, ARCHIVE)
    assert [r.folder for r in read] == [r["folder"] for r in runs]
    ref, fp32 = runs[0], next(r for r in runs if r["variant"] == "fp32")
    assert ref["folder"].rsplit("/", 1)[0] == fp32["folder"].rsplit("/", 1)[0]
    path.write_text(json.dumps({"runs": [{**ref, "folder": fp32["folder"]}]}))
    with pytest.raises(UserError, match=f"carries the settings hash {fp32['hash']}, but its "
                       f"description on its data .* hashes to {ref['hash']}"):  # fmt: skip
        read_queue(path, "cpu", {}, ARCHIVE)
    # a data section of another subset: another hash too
    other = {**ref, "data": {**ref["data"], "subset": {"train_per_class": 20}}}
    path.write_text(json.dumps({"runs": [other]}))
    with pytest.raises(UserError, match="hashes to"):
        read_queue(path, "cpu", {}, ARCHIVE)


@pytest.mark.parametrize(
    "change, message",
    [
        # the variant names files in the work folder: a path would write outside it
        ({"variant": "../../../../outside"}, "variant '../../../../outside' is not a variant"),
        ({"variant": "\x1b[2J"}, r"variant '\\x1b\[2J' is not a variant"),
        # a NaN epoch count fits every plan (NaN > budget is false), then fails in its job
        ({"description": {"epochs": float("nan")}}, "epochs = nan is not allowed"),
        ({"description": {"epochs": -3}}, "epochs = -3 is not allowed"),
        ({"description": {"momentum": "x"}}, "momentum = 'x' is not allowed"),
        ({"description": {"model": {"widths": [4, 0, 8]}}}, "model.widths = \\[4, 0, 8\\]"),
        ({"description": {"model": {"hidden": 2.5}}}, "model.hidden = 2.5"),
        # sizes: the schema's bounds, and at least one block
        (
            {"description": {"model": {"widths": []}}},
            "model.widths = \\[\\] is not a list of 1 to 6",
        ),
        ({"description": {"epochs": 10**30}}, "epochs = 1000000000000000000000000000000 is not"),
        ({"description": {"model": {"widths": [4, 10**9]}}}, "widths = \\[4, 1000000000\\]"),
        (
            {"description": {"model": {"hidden": 10**12}}},
            "hidden = 1000000000000 is not an integer in 1-65536",
        ),
        ({"description": {"batch_size": 10**9}}, "batch_size = 1000000000 is not allowed"),
        (
            {"data": {"subset": {"train_per_class": 10**12}}},
            "subset.train_per_class = 1000000000000",
        ),
        (
            {"description": {"model": {"pool_after": [1, 4]}}},
            "pool_after = \\[1, 4\\] names a block beyond",
        ),
        ({"data": [1, 2]}, "data = \\[1, 2\\] is not an object"),
        ({"data": {"jpeg_quality": 1000}}, "jpeg_quality = 1000 is not null"),
        ({"data": {"subset": {"train_per_class": -5}}}, "subset.train_per_class = -5"),
        ({"data": {"cmd": "x"}}, "key 'cmd' is not a key of the config's data section"),
    ],
)
def test_a_forged_queue_entry_is_one_line_before_any_work(tmp_path, travelled, change, message):
    """Every queued run is checked as `train --run` checks it (the model's sizes only as
    sizes within the schema's bounds: stand-in models are smaller than a config allows),
    with a variant name that cannot leave the work folder and a data section of the
    config's keys."""
    data = {"subset": {"train_per_class": 5}, "jpeg_quality": 50}
    entry = {
        "variant": "paper",
        "folder": folder_of(queued(0.01, 1), travelled, data),
        "description": json.loads(json.dumps(dataclasses.asdict(queued(0.01, 1).rc))),
        "data": data,
    }
    path = tmp_path / "queue.json"
    path.write_text(json.dumps({"runs": [entry]}))
    assert [r.variant for r in read_queue(path, "cpu", {}, travelled)] == ["paper"]  # stand-in
    desc = change.get("description", {})
    desc = {**entry["description"], **desc, "model": {**entry["description"]["model"],
                                                      **desc.get("model", {})}}  # fmt: skip
    path.write_text(json.dumps({"runs": [{**entry, **change, "description": desc}]}))
    with pytest.raises(UserError, match=f"run 1.*{message}") as err:
        read_queue(path, "cpu", {}, travelled)
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)


def test_mps_daemon_is_private_and_always_stopped(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "nvidia-cuda-mps-control"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY" >> {calls}\n'
        f'[ "$1" = "-d" ] || cat >> {calls}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "work"
    with pytest.raises(ZeroDivisionError), mps_daemon(work, log=lambda m: None) as env:
        assert env == {
            "CUDA_MPS_PIPE_DIRECTORY": str(work / "mps" / "pipe"),
            "CUDA_MPS_LOG_DIRECTORY": str(work / "mps" / "log"),
        }
        assert (work / "mps" / "pipe").is_dir()
        raise ZeroDivisionError  # a failure inside still stops the daemon
    pipe, logd = work / "mps" / "pipe", work / "mps" / "log"
    assert calls.read_text().splitlines() == [
        f"args=-d pipe={pipe} log={logd}",
        f"args= pipe={pipe} log={logd}",
        "quit",
    ]
    # no control command: no daemon
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with mps_daemon(work, log=lambda m: None) as env:
        assert env is None


def test_layouts_measured_with_the_compiled_wide_step_on_cpu(tiny_cache, tmp_path):
    spec = ModelSpec(widths=(4, 6, 8), kernel_sizes=(1, 3), pool_after=(1, 2), hidden=16)
    rc = RunConfig(lr=0.01, seed=0, device="cpu", epochs=1, precision="fp32",
                   compile="default", model=spec)  # fmt: skip
    desc = tmp_path / "run.json"
    desc.write_text(json.dumps(dataclasses.asdict(rc)))
    out = tmp_path / "layouts.json"
    measure(desc, tiny_cache, out, ["ceiling", "wide-2"], steps=2)
    res = json.loads(out.read_text())
    assert res["ceiling"]["ok"] and res["ceiling"]["bf16_matmul_flops"] > 0
    wide = res["wide-2"]
    assert wide["ok"], wide
    assert wide["k"] == 2 and wide["finite_loss"] and wide["epochs_per_s"] > 0
    # the rate is the definition's: K / (steps of an epoch x step time + evaluation)
    n_train = len(data_mod.load(tiny_cache).y_train)
    steps = -(-n_train // rc.batch_size)
    assert wide["epochs_per_s"] == pytest.approx(2 / (steps * wide["step_s"] + wide["eval_s"]))


@pytest.mark.parametrize("command", ["train-pack", "measure-layouts"])
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("epochs", float("nan"), "epochs"), ("lr", -1.0, "lr"), ("hidden", 0, "model.hidden")],
)
def test_the_device_commands_children_refuse_a_forged_description(
    tiny_cache, tmp_path, capsys, command, field, value, message
):
    """The device command's children read descriptions it wrote, but from files: a NaN
    epoch count, a negative rate or a model size of 0 is one line before any training or
    measuring, as the queue itself refuses them."""
    from repro.cli import main

    desc = json.loads(json.dumps(dataclasses.asdict(queued(0.01, 1).rc)))
    if field == "hidden":
        desc["model"]["hidden"] = value
    else:
        desc[field] = value
    path = tmp_path / "run.json"
    path.write_text(json.dumps(desc))
    args = {
        "train-pack": ["--runs", str(path), str(path), "--outs", "a", "b"],
        "measure-layouts": [
            "--run",
            str(path),
            "--out",
            str(tmp_path / "m.json"),
            "--layouts",
            "single",
        ],
    }[command]
    assert main([command, *args, "--cache", str(tiny_cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "a").exists()


def test_a_single_rate_from_a_process_measured_beside_another():
    """The fallback's measurement finished in one of its two processes (the other's
    compile outlasted its share): the plan gets the slowest finished process as the single
    run's rate, never a rate faster than measured; with none finished, nothing."""
    from repro.engine.device_queue import single_from_parts

    parts = [{"ok": True, "epochs_per_s": 0.47, "warmup_s": 9.0}, {}]
    found = {
        "ceiling": {"ok": True},
        "wide-4": {"ok": False, "error": "not measured (exit -9)"},
        "single": {"ok": False, "error": "not measured (exit -9)"},
        "procs-2": {"ok": False, "error": "1 of 2 measured", "parts": parts},
    }
    single = single_from_parts(found)["single"]
    assert single["ok"] and single["epochs_per_s"] == 0.47 and single["slots"] == 1
    found.update(single_from_parts(found))
    layout, jobs = choose_layout([queued(0.01, 0, epochs=10)], found, seconds=60)
    assert layout["name"] == "single" and layout["epochs_per_s"] == 0.47 and len(jobs) == 1
    parts[0]["ok"] = False
    assert single_from_parts({"procs-2": {"ok": False, "parts": parts}}) is None
    assert single_from_parts({"procs-2": {"ok": False, "error": "0 of 2 measured"}}) is None


def test_no_layout_measured_measures_the_single_run_again(tiny_cache, tmp_path):
    """The measurement child is stopped before it measures anything (its share of the
    time is too short, as a wide compile's outlasting it was): the single run is measured
    again alone with time of its own, so the plan has a layout and the loan trains."""
    from repro.engine import device_run as dr
    from repro.engine.device_queue import measure_layouts

    rc = dataclasses.replace(queued(0.01, 0).rc, compile=False)
    r = QueuedRun(rc, queued(0.01, 0).folder, "paper", {})
    (tmp_path / "logs").mkdir()
    n = len(data_mod.load(tiny_cache).y_train)
    s = dr.Session({}, tiny_cache, n, tmp_path, "cpu", 1, 2, dr.Clock(600))
    found = measure_layouts(s, r, tiny_cache, (2,), 1, 0.2, None)
    assert not found["wide-2"]["ok"]
    single = found["single"]
    assert single["ok"] and single["measured"] == "again, alone" and single["epochs_per_s"] > 0
    assert json.loads((tmp_path / "layouts.json").read_text())["single"] == single
    layout, _ = choose_layout([r], found, seconds=600)
    assert layout["name"] == "single"


def test_the_wide_check_flag_says_it_runs_after_the_training():
    """--wide-check's help is the session's own account of when the check runs: after
    the training, and only where the plan keeps its time back without losing a run."""
    from repro.cli import build_parser

    sub = build_parser("device-run")._subparsers._group_actions[0].choices["device-run"]
    (flag,) = [a for a in sub._actions if "--wide-check" in a.option_strings]
    assert "after the training" in flag.help and "first" not in flag.help
