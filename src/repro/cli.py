"""Command line: ``python -m repro <stage> ...``, one subcommand per workflow stage.

Every argparse definition of the project is here; each stage's ``run_<stage>`` unpacks
its arguments into the plain function of the stage's module, imported only for the
stage in use (planning, status and the reporting stages never import torch). The train
and timing stages' run flags are made from the run description's fields
(repro.plan.settings), with the schema's defaults, allowed values and messages. Problems the
user can fix end as one line ``error: ...`` and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
from pathlib import Path

from .errors import UserError
from .text import for_terminal

WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
STAGES = {
    "check": "validate a config file (schema and semantic checks)",
    "prepare": "prepare the CIFAR-10 cache (uint8 images + labels)",
    "train": "train one (head, learning rate, device, seed) run",
    "timing": "time the model for a few epochs on one device",
    "step-time": "time a few training steps of one run's model (for estimate)",
    "status": "where the study's runs stand (from their files; --watch)",
    "queue": "the runs the study still lacks, in its priority order, with GPU minutes",
    "estimate": "the study's plan and estimated run time on this machine",
    "device-run": "the paper grid on a GPU in one time-limited command: calibrate, plan, train",
    "measure-layouts": "measure the layouts' epochs/s of one run (for device-run --queue)",
    "wide-check": "train one wide pack twice, deterministic: are the two bitwise equal?",
    "train-pack": "train several runs of one setting at once as one wide network",
    "calibrate": "measure training variants' throughput (for device-run)",
    "record": "a GPU machine's device-run tarball -> recorded/<label>/",
    "recorded": "copy recorded runs (recorded/<label>) instead of training",
    "tables": "Tables 1-4, statistics and the paper's claims as CSV",
    "figures": "Figs. 2-8 (curves, confusion, timing, effects, train vs test, JPEG cost) as SVG"
    " and PNG",
    "provenance": "git, config, versions, data and hosts as JSON",
    "report": "the PDF report (jinja2 -> HTML -> weasyprint)",
}


# ---- numbers on the command line: finite and in range, or one line -------------------


def number(kind: type, low: float, high: float):
    """An argparse type: a ``kind`` (int or float) in [low, high], finite; refused by
    argparse (one line, see Parser.error) otherwise."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            kind_name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind_name}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed; give a number in [{low:g}, {high:g}]"
            )
        return value

    parse.__name__ = kind.__name__
    return parse


THREADS = number(int, 1, 1024)
SECONDS = number(float, 1, 7 * 86400)


class Parser(argparse.ArgumentParser):
    """argparse with its refusals as the project's one line: ``error: ...``, status 2."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


# ---- check, prepare -------------------------------------------------------------------


def args_check(p) -> None:
    p.add_argument("configfile", type=Path, help="YAML config, e.g. config/config.yaml")
    p.add_argument(
        "--no-device-check",
        action="store_true",
        help="do not require explicitly listed devices on this host (cluster head nodes)",
    )


def run_check(a) -> None:
    from .plan.check import check

    cfg, summary = check(a.configfile)
    if not a.no_device_check:
        from .engine.devices import check_presence

        check_presence(cfg)
    print(summary)


# the config keys under data: that the prepare flags set (flag: the key's last part)
PREPARE_KEYS = (
    "source",
    "archive",
    "archive_sha256",
    "folder",
    "download_root",
    "subset.train_per_class",
    "subset.test_per_class",
    "jpeg_quality",
)


def args_prepare(p) -> None:
    """One flag per data setting; an unset flag takes the schema's default."""
    from .plan import schema

    for key in PREPARE_KEYS:
        node = schema.node(f"data.{key}")
        kind = int if "integer" in node.get("type", []) else str
        help_text = f"{node['description']} (default: {node['default']})"
        flag = "--" + key.rpartition(".")[2].replace("_", "-")
        p.add_argument(flag, type=kind, default=None, help=help_text)
    p.add_argument("--out", required=True, type=Path, help="cache file (.npz)")


def run_prepare(a) -> None:
    from .engine.data import prepare
    from .plan.config import data_settings

    data_cfg = data_settings({key: getattr(a, key.rpartition(".")[2]) for key in PREPARE_KEYS})
    meta = prepare(data_cfg, a.out)
    print(f"{a.out}: {meta['n_train']} train / {meta['n_test']} test images ({meta['source']})")


# ---- train, timing, step-time ---------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _run_flags(p, timing: bool) -> None:
    """One flag per configurable field of the run description; unset flags take the
    schema's default (shown in the help)."""
    from .plan import schema
    from .plan.description import flag_name
    from .plan.settings import AXES, config_keys

    group = p.add_argument_group("run settings (instead of --run; defaults: the config's)")
    for path, key in config_keys().items():
        node = schema.node(key)
        default, allowed = node["default"], node["description"]
        if key in AXES:  # a list in the config; a run takes one value (the first default)
            node, default = schema.resolve(node["items"]), default[0]
            allowed = f"one value of the config's {key}: {allowed}"
        if timing and key == "train.epochs":
            default = schema.default("timing.epochs")
        kind = node.get("type")
        flag = flag_name(path, key)
        kw: dict = {
            "default": None,
            "help": f"{allowed} (default: {default})",
            "metavar": flag[2:].upper(),
        }
        if kind == "array":
            kw.update(type=_ints, metavar="N,N,...")
        elif kind == "boolean":
            kw.update(action=argparse.BooleanOptionalAction)
        elif kind is None:  # train.compile: a switch that may name a mode
            kw.update(nargs="?", const=True)
        else:
            kw["type"] = {"integer": int, "number": float, "string": str}[kind]
        if "action" in kw:
            del kw["metavar"]
        group.add_argument(flag, dest=path.replace(".", "__"), **kw)


def _train_inputs(p, cache: bool = True, timing: bool = False) -> None:
    if cache:
        p.add_argument("--cache", required=True, type=Path, help="prepared data (.npz)")
    p.add_argument(
        "--run",
        default=None,
        help="the whole run description as JSON, or a file holding it (what the workflow "
        "and device-run pass, from a validated config); instead of the run flags",
    )
    p.add_argument("--threads", type=THREADS, default=None, help="CPU threads for torch")
    _run_flags(p, timing)


def _description(a, timing: bool = False):
    """The run description from --run or the run flags, resolved on this machine."""
    from .engine import devices
    from .plan.description import run_description
    from .plan.settings import config_keys

    if a.threads is not None and a.threads < 1:
        raise UserError(f"--threads {a.threads} is not allowed; give an integer >= 1")
    # field path -> (config key, the flag's value); None: not given
    given = {
        path: (key, getattr(a, path.replace(".", "__")))
        for path, key in config_keys().items()
        if getattr(a, path.replace(".", "__")) is not None
    }
    rc = run_description(a.run, given, timing, devices)
    devices.use_threads(a.threads)
    return rc.on_this_machine()


def args_train(p) -> None:
    _train_inputs(p)
    p.add_argument("--out", required=True, type=Path, help="run folder for CSVs and weights")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="per-epoch checkpoint; an existing one of the same config is resumed",
    )
    p.add_argument(
        "--progress",
        type=Path,
        default=None,
        help="progress JSON rewritten every epoch (what `python -m repro status` reads)",
    )
    _gpu_slots(p)


def run_train(a) -> None:
    rc = _description(a)
    if not a.cache.exists():
        raise UserError(f"data cache {a.cache} does not exist; run `python -m repro prepare`")
    from .engine.devices import take_gpu
    from .engine.train import result_line, train_run

    gpu = take_gpu(a.gpu_slots, rc.device)
    m = train_run(rc, a.cache, a.out, checkpoint=a.checkpoint, progress=a.progress, gpu=gpu)
    # stdout, not the log: Snakemake shows it when the job ends
    print(for_terminal(result_line(m)), flush=True)


def args_timing(p) -> None:
    _train_inputs(p, timing=True)
    p.add_argument("--out", required=True, type=Path, help="timing JSON")
    _gpu_slots(p)


def run_timing(a) -> None:
    if a.out.is_dir():
        raise UserError(f"--out {a.out} is a folder; give the timing JSON's file path")
    rc = _description(a, timing=True)
    from .engine.devices import take_gpu
    from .engine.timing import measure

    take_gpu(a.gpu_slots, rc.device)  # a GPU shared with a training job would time both
    a.out.parent.mkdir(parents=True, exist_ok=True)
    measure(rc, a.cache, a.out)


def args_step_time(p) -> None:
    _train_inputs(p, cache=False)
    p.add_argument("--out", required=True, type=Path, help="calibration JSON")


def run_step_time(a) -> None:
    from .engine.calibrate import write_step_seconds

    rec = write_step_seconds(_description(a), a.out)
    print(f"{rec['step_s']:.3f} s per step of {rec['batch']} on {rec['device_name']}")


# ---- status, estimate -----------------------------------------------------------------


def _study(p) -> None:
    p.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        action="extend",
        default=[],
        help="the config files of the snakemake call, merged over config/config.yaml",
    )
    p.add_argument(
        "--directory",
        "-d",
        type=Path,
        default=None,
        help="the project folder the workflow runs in (default: here)",
    )


def _enter(directory: Path | None) -> None:
    if directory is None:
        return
    if not directory.is_dir():
        raise UserError(f"--directory {directory} is not a folder; give the project's folder")
    os.chdir(directory)


def args_status(p) -> None:
    _study(p)
    p.add_argument("--watch", action="store_true", help="redraw every --interval seconds")
    interval = number(float, 0.1, 3600)
    p.add_argument("--interval", type=interval, default=2.0, help="seconds between redraws")


def run_status(a) -> None:
    from .plan.status import show

    _enter(a.directory)
    show(a.configfile, watch=a.watch, interval=a.interval)


def args_queue(p) -> None:
    _study(p)
    p.add_argument(
        "--recorded",
        type=Path,
        default=None,
        help="a recorded folder (recorded/<label>) whose runs count as done",
    )
    p.add_argument("--out", type=Path, default=None, help="write the queue here as JSON")


def run_queue(a) -> None:
    from .plan.queue import lines, queue, write

    try:  # a link loop or a folder this user may not enter: one line, not "cannot write"
        recorded = a.recorded.resolve() if a.recorded else None
    except (OSError, RuntimeError) as e:
        why = getattr(e, "strerror", None) or "a symbolic link loop"
        raise UserError(
            f"--recorded {a.recorded} cannot be read ({why}); give recorded/<label>"
        ) from None
    _enter(a.directory)
    q = queue(a.configfile, Path("."), recorded)
    if a.out:
        write(q, a.out)
    print(lines(q))


def args_estimate(p) -> None:
    _study(p)
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="use cached or recorded figures only (as estimate.calibrate: false)",
    )


def run_estimate(a) -> None:
    from .plan.estimate import for_study

    _enter(a.directory)
    print("\n".join(map(for_terminal, for_study(a.configfile, calibrate=not a.no_calibrate))))


# ---- the GPU machine: device-run, calibrate; recording its tarball ---------------------


def _subset(text: str) -> tuple[int | None, int | None]:
    try:
        a, b = text.split(",")
        train, test = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not TRAIN,TEST (two integers)") from None
    if not (1 <= train <= 5000 and 1 <= test <= 1000):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 1-5000 train and 1-1000 test images per class"
        )
    return train, test


def args_device_run(p) -> None:
    from .engine.device_run import MODES, ROOT

    p.add_argument("--archive", type=Path, default=ROOT / "resources/device/cifar10-jpeg.tar.gz")
    p.add_argument("--out", type=Path, required=True, help="folder for the tarball")
    p.add_argument("--work", type=Path, required=True, help="scratch folder")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget-s", type=SECONDS, default=560.0, help="wall-clock budget")
    p.add_argument("--subset", type=_subset, default=(None, None), help="TRAIN,TEST per class")
    epochs = number(int, 1, 100_000)
    p.add_argument("--epochs", type=epochs, default=None, help="instead of the paper's 150")
    p.add_argument("--variants", nargs="+", default=["eager", "graphs"], choices=sorted(MODES))
    p.add_argument("--calibration-steps", type=number(int, 1, 100_000), default=200)
    p.add_argument(
        "--reference-workers",
        type=number(int, 0, 256),
        nargs="+",
        default=[2, 8],
        help="DataLoader workers of the seed-style reference loop (one measurement each)",
    )
    p.add_argument("--commit", default="unknown")
    p.add_argument(
        "--lrs",
        type=number(float, 1e-12, 1e6),
        nargs="+",
        default=None,
        help="train only these of the config's learning rates, in this priority order",
    )
    p.add_argument(
        "--plan",
        default=None,
        choices=[f"{m}-{p}" for m in MODES for p in ("fp32", "bf16")],
        help="skip the calibration and train with this variant (e.g. graphs-bf16)",
    )
    p.add_argument("--threads", type=THREADS, default=4, help="CPU threads per training process")
    q = p.add_argument_group("a queue of runs (repro queue), trained in packs")
    q.add_argument("--queue", type=Path, default=None, help="queue.json: the runs to train")
    q.add_argument(
        "--standin-queue",
        action="store_true",
        help="no queue: the paper grid with seeds 1 and 2 in fp32 (--subset, --epochs apply)",
    )
    q.add_argument("--measure-s", type=SECONDS, default=90.0, help="seconds for the layouts")
    pack = number(int, 1, 64)
    q.add_argument("--wide-ks", type=pack, nargs="+", default=[2, 4, 8], help="packs measured")
    q.add_argument("--procs", type=pack, default=2, help="processes of the fallback layout")
    q.add_argument("--force-layout", default=None, help="train with this measured layout")
    q.add_argument(
        "--wide-check", type=number(int, 0, 64), default=0, metavar="K",
        help="after the training, where the plan keeps its time back without losing a run:"
        " check that two deterministic passes of a pack of K are bitwise equal",
    )  # fmt: skip


def run_device_run(a) -> None:
    from .plan.code_identity import COMMIT, NAMED_COMMIT_ENV

    if COMMIT.fullmatch(a.commit):
        # every training child records it beside the commit its (maybe older) .git names
        os.environ[NAMED_COMMIT_ENV] = a.commit
    # what the queue mode and the paper-grid mode both take
    common = dict(archive=a.archive, device=a.device, budget_s=a.budget_s, commit=a.commit)
    common["threads"] = a.threads
    if a.queue is not None or a.standin_queue:
        from .engine.device_queue import queue_device_run

        standin = dict(subset=a.subset, epochs=a.epochs) if a.queue is None else None
        queue_device_run(
            a.out, a.work, queue=a.queue, measure_s=a.measure_s, steps=a.calibration_steps,
            ks=tuple(a.wide_ks), procs=a.procs, standin=standin, force_layout=a.force_layout,
            wide_check=a.wide_check,
            **common,
        )  # fmt: skip
        return
    from .engine.device_run import device_run

    device_run(
        a.out, a.work, subset=a.subset, epochs=a.epochs, variants=tuple(a.variants),
        calibration_steps=a.calibration_steps, reference_workers=tuple(a.reference_workers),
        lrs=tuple(a.lrs) if a.lrs else None, fixed_plan=a.plan, **common,
    )  # fmt: skip


def args_measure_layouts(p) -> None:
    p.add_argument("--run", type=Path, required=True, help="run description (JSON file)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=number(int, 1, 100_000), default=60)
    p.add_argument("--layouts", nargs="+", required=True, help="ceiling, single, wide-K")


def run_measure_layouts(a) -> None:
    from .engine.layouts import measure

    measure(a.run, a.cache, a.out, a.layouts, a.steps)


def args_wide_check(p) -> None:
    p.add_argument("--run", type=Path, required=True, help="run description (JSON file)")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--k", type=int, default=2, help="runs in the pack (seeds 0..k-1)")
    images = number(int, 2, 10_000_000)
    p.add_argument("--images", type=images, default=4096, help="training images of the pass")


def run_wide_check(a) -> None:
    if not 1 <= a.k <= 64 or a.images < 2:
        raise UserError(
            f"wide-check --k {a.k} --images {a.images}: use a pack of 1-64 runs and at least "
            "2 training images"
        )
    from .engine.wide_check import check

    res = check(a.run, a.cache, a.k, a.images, a.out)
    verdict = "bitwise equal" if res["bitwise_equal"] else "NOT equal"
    print(f"wide-check on {for_terminal(res['device_name'])}: K = {res['k']}, {verdict}")


def args_train_pack(p) -> None:
    p.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="run descriptions (JSON, or files holding them) of one setting: only lr and "
        "seed differ; one run trains alone, as `repro train` trains it",
    )
    p.add_argument("--cache", type=Path, required=True, help="prepared data (.npz)")
    p.add_argument("--outs", type=Path, nargs="+", required=True, help="a folder per run")
    p.add_argument("--checkpoints", type=Path, nargs="+", default=None)
    p.add_argument("--progress", type=Path, nargs="+", default=None, help="a file per run")
    p.add_argument("--threads", type=THREADS, default=None, help="CPU threads for torch")
    _gpu_slots(p)


def _gpu_slots(p) -> None:
    p.add_argument(
        "--gpu-slots",
        type=Path,
        default=None,
        help="a cuda job takes a GPU no other job with this lock folder uses, waiting "
        "while all are taken (the workflow's jobs); default: torch's current GPU",
    )


def run_train_pack(a) -> None:
    from .plan.config import short
    from .plan.description import checked_any_size, read_description

    if a.threads is not None and a.threads < 1:
        raise UserError(f"--threads {a.threads} is not allowed; give an integer >= 1")
    # checked as train --run checks a description, but for the model's sizes: the device
    # command packs stand-in models smaller than a config allows
    rcs = []
    for r in a.runs:
        try:
            rcs.append(checked_any_size(read_description(r)))
        except UserError as e:
            raise UserError(f"--runs {short(r)}: {e}") from None
    if not a.cache.exists():
        raise UserError(f"data cache {a.cache} does not exist; run `python -m repro prepare`")
    from .engine import devices
    from .engine.pack import check_pack
    from .engine.pack_run import train_pack
    from .engine.train import result_line, train_run

    check_pack(rcs, a.outs, a.checkpoints, a.progress)
    devices.resolve(rcs[0].device)  # present on this machine, or one line saying so
    devices.use_threads(a.threads)
    gpu = devices.take_gpu(a.gpu_slots, rcs[0].device)
    if len(rcs) == 1:  # the single-run path: bitwise a single run's, and faster alone
        checkpoint, progress = (a.checkpoints or [None])[0], (a.progress or [None])[0]
        results = [train_run(rcs[0], a.cache, a.outs[0], checkpoint, progress=progress, gpu=gpu)]
    else:
        results = train_pack(rcs, a.cache, a.outs, a.checkpoints, a.progress, gpu=gpu)
    for m in results:
        # stdout, not the log: Snakemake shows it when the job ends
        print(for_terminal(result_line(m)), flush=True)


def args_calibrate(p) -> None:
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=number(int, 1, 100_000), default=200)
    p.add_argument("--variants", nargs="+", required=True)


def run_calibrate(a) -> None:
    from .engine.device_run import calibrate

    calibrate(a.cache, a.device, a.variants, a.out, a.steps)


def args_record(p) -> None:
    p.add_argument("--tarball", type=Path, help="device-run.tar.gz")
    p.add_argument("--label", help="e.g. h100-2026-11-26")
    p.add_argument("--dest", type=Path, default=Path("recorded"))
    p.add_argument("--commit", default=None, help="the commit the device ran")
    p.add_argument(
        "--add",
        action="store_true",
        help="add the runs to the existing folder of this label (same settings)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        metavar="FOLDER",
        help="only write the manifest (size, sha256 of each file) of a trusted recorded folder",
    )


def run_record(a) -> None:
    from .plan.recording import add_manifest, record

    if a.manifest:
        print(f"manifest written: {add_manifest(a.manifest)}/provenance.json")
    elif a.tarball is None or a.label is None:
        raise UserError("record needs --tarball and --label (or --manifest FOLDER)")
    else:
        print(f"recorded: {record(a.tarball, a.dest, a.label, a.commit, a.add)}")


def args_recorded(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("run", help="copy one recorded run into a results run folder")
    p.add_argument("--folder", required=True, type=Path, help="the recorded folder")
    p.add_argument("--run", required=True, help="results/runs/... inside the recorded folder")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p = sub.add_parser("timing", help="copy one recorded timing JSON")
    p.add_argument("--folder", required=True, type=Path, help="the recorded folder")
    p.add_argument("--device", required=True, help="cpu, cuda or mps")
    p.add_argument("--out", required=True, type=Path, help="timing JSON to write")
    p = sub.add_parser("meta", help="the recording's provenance and data description")
    p.add_argument("--folder", required=True, type=Path, help="the recorded folder")
    p.add_argument("--runs", nargs="+", required=True, help="results/runs/... of every run")
    p.add_argument("--out-dir", required=True, type=Path, help="folder to write them into")


def run_recorded(a) -> None:
    from .plan import recorded

    if a.action == "run":
        recorded.copy_run(a.folder, a.run, a.out)
    elif a.action == "timing":
        recorded.copy_timing(a.folder, a.device, a.out)
    else:
        recorded.write_meta(a.folder, a.runs, a.out_dir)


# ---- reporting: tables, figures, provenance, report ------------------------------------


def _study_inputs(p) -> None:
    p.add_argument("--config", required=True, help="resolved config (results/config.json)")
    p.add_argument("--runs", nargs="+", required=True, help="metrics.json of every run")
    p.add_argument("--timing", nargs="*", default=[], help="timing.json per device")
    p.add_argument("--data-meta", help="the data cache's .json (sha256, source)")


def args_tables(p) -> None:
    _study_inputs(p)
    p.add_argument("--out-dir", required=True, help="folder for the CSV tables")


def run_tables(a) -> None:
    from .report import tables

    tables.build(a.config, a.runs, a.timing, a.data_meta, a.out_dir)


def args_figures(p) -> None:
    _study_inputs(p)
    p.add_argument("--out-dir", required=True, help="folder for the SVG and PNG figures")


def run_figures(a) -> None:
    from .report import figures

    figures.build(a.config, a.runs, a.timing, a.out_dir, a.data_meta)


def args_provenance(p) -> None:
    _study_inputs(p)
    p.add_argument("--repo", default=".", help="git working tree to describe")
    p.add_argument(
        "--recorded", nargs="*", default=[], help="the recording's provenance, if runs were copied"
    )
    p.add_argument("--out", required=True, help="provenance JSON to write")


def run_provenance(a) -> None:
    from .report import provenance

    recorded = a.recorded[0] if a.recorded else None
    provenance.build(a.config, a.runs, a.timing, a.data_meta, a.repo, recorded, a.out)


def args_report(p) -> None:
    _study_inputs(p)
    p.add_argument("--tables-dir", required=True, help="folder with the tables' CSVs")
    p.add_argument("--figures-dir", required=True, help="folder with the figures' SVGs")
    p.add_argument("--provenance", required=True, help="provenance JSON")
    p.add_argument("--out", required=True, help="PDF to write")
    p.add_argument("--html", help="also write the intermediate HTML here (optional)")


def run_report(a) -> None:
    from .report import pdf as report

    report.build(
        a.config,
        a.runs,
        a.timing,
        a.tables_dir,
        a.figures_dir,
        a.provenance,
        a.out,
        html=a.html,
    )


# ---- wiring -----------------------------------------------------------------------------


def build_parser(stage: str | None) -> argparse.ArgumentParser:
    """Every stage is listed; only ``stage``'s arguments are defined (a stage's may
    import the module that knows its choices)."""
    parser = Parser(prog="python -m repro", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            suffix = name.replace("-", "_")
            globals()[f"args_{suffix}"](p)
            p.set_defaults(_run=globals()[f"run_{suffix}"])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stage = argv[0] if argv and argv[0] in STAGES else None
    args = build_parser(stage).parse_args(argv)
    try:
        args._run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return 0
    except UserError as e:
        # messages quote values from files: one line, no escape sequence obeyed
        print(f"error: {for_terminal(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped reading (`repro queue | head -1`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        if e.filename is None:
            raise
        where = for_terminal(str(e.filename))
        if e.errno in WRITE_ERRORS:
            print(
                f"error: cannot write {where}: {e.strerror}; free space or "
                "choose a writable results folder (finished files were not touched)",
                file=sys.stderr,
            )
        else:  # a read or a write: say which file and why, not which of the two
            print(
                f"error: {where}: {e.strerror}; check the path and its permissions", file=sys.stderr
            )
        return 1
