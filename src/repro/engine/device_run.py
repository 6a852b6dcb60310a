"""The paper's grid on one GPU, in one command, inside a wall-clock budget.

1. Prepare the full data set from the archive that travelled with the checkout.
2. Calibrate, each measurement in its own process with a time limit (a hang or a crash
   costs its own seconds, never the run): a bf16 matrix product (the ceiling), the
   seed-style reference loop (DataLoader + PIL, fp32, NCHW), the project's loop eager in
   fp32 (TF32 convolutions, as the seed ran) and in bf16 autocast, and compiled with CUDA
   graphs (torch.compile's reduce-overhead mode).
3. Plan: the seed's arithmetic (fp32) if the calibration says the whole grid fits the
   budget with it, else bf16 autocast; the fastest working mode of that arithmetic. A
   timing run of the plan (the workflow's timing stage) checks it end to end first.
4. Train the learning rates of config/config.yaml as concurrent processes, each exactly
   the workflow's train job (the same RunConfig, run folder and hash). A monitor stops
   the run of lowest priority (0.001, then 0.005) as soon as the measured rates say that
   not all can finish in time, so that the others do; a stopped run keeps its checkpoint.
5. Pack the run folders (CSV/JSON), the calibration, the plan, the logs and the device's
   name, driver and library versions into one tarball; the final weights apart, in fp16.

It runs under the GPU machine's own python3, which has torch, torchvision, numpy,
pillow and pyyaml but no jsonschema or snakemake: the paper config is read with yaml and
given the schema's defaults, not validated (it is the repository's own file).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch
import yaml

from ..files import open_append, read_regular, write_atomic
from ..plan import config as config_mod
from ..plan import grid
from ..plan.architecture import macs_per_image
from ..plan.machine import cpu_has_bf16, cpu_name
from . import data as data_mod
from .train import EPOCH_COLUMNS, RunConfig, read_checkpoint, run_versions, write_csv

ROOT = Path(__file__).resolve().parents[3]
PAPER_CONFIG = ROOT / "config" / "config.yaml"
# execution modes of the training step: torch.compile mode (False = eager)
MODES = {"eager": False, "compiled": "default", "graphs": "reduce-overhead"}
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) .*\| ([\d.]+) s, elapsed")
# seconds kept free at the end for stopping runs, packing and printing
PACK_RESERVE_S = 25.0
MAX_TIMING_BYTES = 2**20  # a timing JSON is a few kB
CHILDREN: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- the study's settings ---------------------------------------------------------


def paper_config(archive: Path, subset: tuple[int | None, int | None], epochs: int | None):
    """config/config.yaml with the schema's defaults, reading the given archive."""
    cfg = yaml.safe_load(PAPER_CONFIG.read_text())
    config_mod.fill_defaults(cfg)
    cfg["data"].update(source="archive", archive=str(archive))
    cfg["data"]["subset"] = {"train_per_class": subset[0], "test_per_class": subset[1]}
    if epochs is not None:
        cfg["train"]["epochs"] = epochs
    return cfg


def with_plan(cfg: dict, precision: str, mode: str) -> dict:
    """The config a run of this plan belongs to (what config/recorded.yaml must say)."""
    out = json.loads(json.dumps(cfg))
    out["train"]["precision"] = precision
    out["train"]["compile"] = MODES[mode]
    return out


def variant_config(cfg: dict, device: str, variant: str) -> RunConfig:
    mode, precision = variant.split("-")
    rc = grid.run_config(with_plan(cfg, precision, mode), "softmax", 0.01, device, 0)
    return rc


# ---- calibration (runs in a child process) -----------------------------------------


def calibrate(cache: Path, device: str, variants: list[str], out: Path, steps: int) -> None:
    """Measure each variant in turn; ``out`` (JSON) is rewritten after each one, so a
    time limit keeps what was measured before it."""
    from . import throughput

    cfg = yaml.safe_load(PAPER_CONFIG.read_text())
    config_mod.fill_defaults(cfg)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    ds = data_mod.load(cache)

    def one(variant: str) -> dict:
        if variant == "ceiling":
            n, reps = (8192, 20) if dev.type == "cuda" else (512, 3)
            return {
                "bf16_matmul_flops": throughput.matmul_flops(dev, torch.bfloat16, n, reps),
                "fp32_matmul_flops": throughput.matmul_flops(dev, torch.float32, n, reps),
                "n": n,
                "ok": True,
            }
        if variant.startswith("reference"):
            workers = int(variant.split("-w")[1])
            rc = variant_config(cfg, device, "eager-fp32")
            img_s = throughput.reference_loop(ds, rc, dev, steps, max(2, steps // 10), workers)
            return {"img_s": img_s, "workers": workers, "ok": True}
        rc = variant_config(cfg, device, variant)
        torch.backends.cuda.matmul.allow_tf32 = False  # as repro.engine.train.setup_device
        warmup = max(2, steps // 10) if rc.compile is False else max(3, steps // 5)
        return {**throughput.project_loop(ds, rc, dev, steps, warmup), "ok": True}

    throughput.measure_each(variants, one, out, "calibrated")


# ---- the driver ------------------------------------------------------------------


class Clock:
    def __init__(self, budget_s: float):
        self.t0 = time.monotonic()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def child(
    args: list[str], log_path: Path, threads: int, extra_env: dict | None = None
) -> subprocess.Popen:
    """A ``python -m repro`` process in its own session (so it can be stopped with all
    its workers), with its stderr and stdout in ``log_path`` (``extra_env``: e.g. the
    MPS daemon's pipe)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    fh = open_append(log_path)  # closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "repro", *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd=ROOT,
    )
    proc.log_file = fh
    CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 20.0) -> int:
    """SIGTERM the process group (a run keeps its last checkpoint), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    proc.log_file.close()
    return proc.returncode


def run_child(
    args: list[str], log_path: Path, timeout: float, threads: int = 8, extra_env=None
) -> int | None:
    proc = child(args, log_path, threads, extra_env)
    try:
        proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        log(f"  stopped after {timeout:.0f} s: {' '.join(args[:3])}")
        stop(proc, grace=5)
        return None
    proc.log_file.close()
    return proc.returncode


def epoch_seconds(res: dict, n_train: int) -> float:
    """Seconds per epoch (train + test): measured by a timing run, or from the
    calibration's images/s and evaluation time."""
    if "epoch_s" in res:
        return res["epoch_s"]
    return n_train / res["img_s"] + res["eval_s"]


def choose(calib: dict, n_train: int, n_runs: int, epochs: int, seconds: float) -> dict:
    """The plan: fp32 (the seed's arithmetic) if the whole grid fits ``seconds`` with it,
    else bf16; within the arithmetic, the mode with the shortest grid. The estimate
    treats the concurrent runs as sharing the GPU (their epochs add up), which is right
    when one run keeps the GPU busy and pessimistic when it does not."""
    options = []
    for variant, res in calib.items():
        if "-" not in variant or variant.startswith("reference") or not res.get("ok"):
            continue
        if not res.get("finite_loss", True):
            continue
        mode, precision = variant.split("-")
        est = n_runs * epochs * epoch_seconds(res, n_train) + res["warmup_s"]
        options.append(dict(variant=variant, mode=mode, precision=precision, grid_s=est))
    if not options:
        raise RuntimeError("no training variant worked in the calibration")
    fp32 = [o for o in options if o["precision"] == "fp32" and o["grid_s"] <= 0.9 * seconds]
    pool = fp32 or [o for o in options if o["precision"] == "bf16"] or options
    best = dict(min(pool, key=lambda o: o["grid_s"]))
    best["fits"] = best["grid_s"] <= seconds
    best["alternatives"] = options
    return best


@dataclasses.dataclass
class Run:
    lr: float
    rc: RunConfig
    folder: Path
    rel_folder: str
    checkpoint: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    epochs_done: int = 0
    epoch_s: list = dataclasses.field(default_factory=list)
    status: str = "planned"
    t_start: float = 0.0
    t_end: float = 0.0

    @property
    def name(self) -> str:
        return f"lr{grid.lr_tag(self.lr)}"

    def read_progress(self) -> None:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return
        found = EPOCH_LINE.findall(text)
        if found:
            self.epochs_done = int(found[-1][0])
            self.epoch_s = [float(s) for _, _, s in found]

    def rate(self) -> float | None:
        """Epochs per second over the last few epochs (steady state)."""
        if len(self.epoch_s) < 3:
            return None
        recent = sorted(self.epoch_s[-5:])
        return 1.0 / recent[len(recent) // 2]


def must_stop_one(remaining: list[int], rates: list[float], seconds_left: float) -> bool:
    """Whether the runs (in priority order) cannot all finish in ``seconds_left`` at the
    measured aggregate rate. Sharing one GPU, the runs' epochs add up: stopping one
    speeds up the others, so the test is on the total; a single run is never stopped
    early (the deadline stops it)."""
    if len(remaining) < 2:
        return False
    return sum(remaining) / sum(rates) > seconds_left


def run_grid(runs: list[Run], cache: Path, work: Path, clock: Clock, threads: int) -> None:
    """Start every run at once; stop the lowest-priority one whenever the rates say that
    the remaining epochs cannot all finish before the deadline."""
    for r in runs:
        desc = work / "run-descriptions" / f"{r.name}.json"
        write_atomic(desc, json.dumps(dataclasses.asdict(r.rc), indent=2))
        r.proc = child(
            [
                "train",
                "--run",
                str(desc),
                "--cache",
                str(cache),
                "--out",
                str(r.folder),
                "--checkpoint",
                str(r.checkpoint),
                "--threads",
                str(threads),
            ],
            r.log_path,
            threads,
        )
        r.status, r.t_start = "running", clock.elapsed()
    last_stop = -1e9
    while any(r.status == "running" for r in runs):
        time.sleep(1.0)
        for r in runs:
            if r.status != "running":
                continue
            r.read_progress()
            if r.proc.poll() is not None:
                r.proc.log_file.close()
                r.t_end = clock.elapsed()
                ok = r.proc.returncode == 0 and (r.folder / "metrics.json").exists()
                r.status = "done" if ok else f"failed (exit {r.proc.returncode})"
                log(f"{r.name}: {r.status} after {r.epochs_done} epochs")
        running = [r for r in runs if r.status == "running"]
        if not running:
            break
        if clock.left() < PACK_RESERVE_S:
            for r in running:
                halt(r, clock, "stopped at the deadline after epoch {k}")
            break
        rates = [r.rate() for r in running]
        if None in rates or clock.elapsed() - last_stop < 10:
            continue
        left = [r.rc.epochs - r.epochs_done for r in running]
        seconds = clock.left() - PACK_RESERVE_S
        if must_stop_one(left, rates, seconds):
            why = f"projected {sum(left) / sum(rates):.0f} s for {sum(left)} epochs"
            why += f", {seconds:.0f} s left"
            # the last running run has the lowest priority
            halt(running[-1], clock, "stopped after epoch {k} so that the others finish", why)
            last_stop = clock.elapsed()


def halt(r: Run, clock: Clock, what: str, why: str = "") -> None:
    """Stop a run (it keeps its last checkpoint); ``what`` names its last epoch as {k}."""
    stop(r.proc)
    r.read_progress()
    r.status, r.t_end = what.format(k=r.epochs_done), clock.elapsed()
    log(f"{r.name}: {r.status}" + (f" ({why})" if why else ""))


def partial_history(r: Run, dest: Path) -> None:
    """The epochs a stopped run completed, from its checkpoint."""
    ck = read_checkpoint(r.checkpoint)
    if ck is not None and "state" in ck:
        write_csv(dest / r.name / "epochs.csv", EPOCH_COLUMNS, ck["state"]["epochs"])


def environment(device: str, commit: str) -> dict:
    env = {
        "commit": commit,
        "argv": sys.argv,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        **run_versions(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            multiprocessors=p.multi_processor_count,
            capability=f"{p.major}.{p.minor}",
        )
        try:
            smi = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                    "--format=csv,noheader",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            )
            env["nvidia_smi"] = smi.stdout.strip()
            env["driver"] = smi.stdout.split(",")[1].strip() if smi.stdout else None
        except (OSError, subprocess.SubprocessError, IndexError):
            env["driver"] = None
    else:
        env["gpu"] = None
    return env


def export_weights(r: Run, out_dir: Path) -> None:
    """The run's final weights in fp16 (half the bytes; enough to evaluate the model),
    as a plain state dict beside the tarball."""
    src = r.folder / "model.pt"
    if not src.exists():
        return
    state = torch.load(src, map_location="cpu", weights_only=True)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    write_atomic(out_dir / f"weights-{r.name}-fp16.pt", lambda f: torch.save(half, f))


def device_run(out_dir: Path, work: Path, **kw) -> dict:
    """The study (``study`` below); whatever happens in it, no child process outlives
    it and everything it produced so far is packed into the tarball."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    try:
        summary = study(out_dir=out_dir, work=work, **kw)
    finally:
        for proc in CHILDREN:
            if proc.poll() is None:
                stop(proc, grace=10)
        tarball = pack(work, out_dir)
        log(f"packed {tarball}")
    print_summary(summary, tarball)
    return summary


@dataclasses.dataclass
class Session:
    """What every step of a device study shares: the paper config, the prepared data,
    the scratch folder, the clock and the calibration measured so far."""

    cfg: dict
    cache: Path
    n_train: int
    work: Path
    device: str
    threads: int
    calibration_steps: int
    clock: Clock
    calib: dict = dataclasses.field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def save_calibration(self) -> None:
        write_atomic(self.work / "calibration.json", json.dumps(self.calib, indent=2))


def study(
    archive: Path,
    out_dir: Path,
    work: Path,
    device: str = "cuda",
    budget_s: float = 560.0,
    subset: tuple[int | None, int | None] = (None, None),
    epochs: int | None = None,
    variants: tuple[str, ...] = ("eager", "graphs"),
    calibration_steps: int = 200,
    reference_workers: tuple[int, ...] = (2, 8),
    commit: str = "unknown",
    threads: int = 4,
    lrs: tuple[float, ...] | None = None,
    fixed_plan: str | None = None,
) -> dict:
    """Prepare the data, plan (measured, or fixed by the caller), train the grid in
    priority order, and collect what it produced."""
    env, s = start(archive, work, device, budget_s, (subset, epochs), commit)
    s.threads, s.calibration_steps = threads, calibration_steps
    lrs = priority(s.cfg, lrs)
    n_epochs = s.cfg["train"]["epochs"]
    timing_out = work / "results" / "timing" / device / "timing.json"
    if fixed_plan:
        plan = plan_fixed(fixed_plan, len(lrs), n_epochs)
    else:
        plan = plan_measured(s, variants, reference_workers, len(lrs), timing_out)
    study_cfg = with_plan(s.cfg, plan["precision"], plan["mode"])
    write_atomic(work / "plan.json", json.dumps({**plan, "config": study_cfg}, indent=2))
    runs = grid_runs(study_cfg, lrs, device, work)
    t_grid = s.clock.elapsed()
    run_grid(runs, s.cache, work, s.clock, threads)
    grid_wall = s.clock.elapsed() - t_grid
    for r in runs:
        if r.status != "done":
            partial_history(r, work / "partial")
        export_weights(r, out_dir)
    summary = summarize(env, s.calib, plan, runs, grid_wall, s.n_train, timing_out)
    write_atomic(work / "summary.json", json.dumps(summary, indent=2))
    return summary


def start(archive: Path, work: Path, device: str, budget_s: float, scale, commit: str):
    """The machine described (environment.json) and the paper's data prepared at
    ``scale`` (subset, epochs; None: the paper's)."""
    clock = Clock(budget_s)
    (work / "logs").mkdir(exist_ok=True)
    env = environment(device, commit)
    write_atomic(work / "environment.json", json.dumps(env, indent=2))
    log(f"device {env.get('gpu') or env['cpu']}; torch {env['torch']}; budget {budget_s:.0f} s")
    cfg = paper_config(archive, *scale)
    cache = work / "data" / "cifar10.npz"
    meta = data_mod.prepare(cfg["data"], cache)
    log(f"data: {meta['n_train']} train / {meta['n_test']} test images ({clock.elapsed():.0f} s)")
    s = Session(
        cfg, cache, meta["n_train"], work, device, threads=4, calibration_steps=200, clock=clock
    )
    return env, s


def priority(cfg: dict, lrs: tuple[float, ...] | None) -> list[float]:
    """The learning rates to train, in the caller's priority order (default: the config's)."""
    lrs = list(lrs or cfg["learning_rates"])
    unknown = [lr for lr in lrs if lr not in cfg["learning_rates"]]
    if unknown:
        raise ValueError(f"learning rates {unknown} are not in {PAPER_CONFIG.name}")
    return lrs


def calibrate_in_child(s: Session, names: list[str], limit: float) -> None:
    """Measure the named variants' throughput in a child process, within ``limit`` s."""
    tmp = s.work / f"calibration-{names[0]}.json"
    args = ["calibrate", "--cache", str(s.cache), "--device", s.device, "--out", str(tmp)]
    args += ["--steps", str(s.calibration_steps), "--variants", *names]
    rc = run_child(args, s.logs / "calibration.log", limit, 8)
    if tmp.exists():
        s.calib.update(json.loads(tmp.read_text()))
    for name in names:
        s.calib.setdefault(name, {"ok": False, "error": f"not measured (exit {rc})"})
    s.save_calibration()


def timing_in_child(s: Session, variant: str, limit: float) -> Path | None:
    """The workflow's timing stage (``timing.epochs`` real epochs, train + test) with one
    variant: the check of the whole training path before the grid, the device's figure
    for the report, and the calibration of the compiled variants (whose compilation the
    grid's processes then find in the cache)."""
    mode, precision = variant.split("-")
    rc = grid.run_config(
        with_plan(s.cfg, precision, mode), "softmax", s.cfg["learning_rates"][0], s.device, 0
    )
    rc = dataclasses.replace(rc, epochs=min(s.cfg["timing"]["epochs"], s.cfg["train"]["epochs"]))
    desc = s.work / "run-descriptions" / f"timing-{variant}.json"
    write_atomic(desc, json.dumps(dataclasses.asdict(rc), indent=2))
    out = s.work / "timing" / variant / "timing.json"
    args = ["timing", "--run", str(desc), "--cache", str(s.cache), "--out", str(out)]
    args += ["--threads", str(s.threads)]
    code = run_child(args, s.logs / f"timing-{variant}.log", limit, s.threads)
    ok = code == 0 and out.exists()
    entry = s.calib.setdefault(variant, {})
    entry["timing_ok"] = ok
    if ok:
        t = json.loads(out.read_text())
        entry["timing"] = t
        if "img_s" not in entry:  # a variant calibrated by its timing run alone
            entry.update(
                ok=t["finite"],
                img_s=t["train_images_per_s_after_first"],
                epoch_s=t["seconds_per_epoch_after_first"],
                warmup_s=t["seconds_first_epoch"] - t["seconds_per_epoch_after_first"],
                source=f"timing stage, {rc.epochs} epochs, after the first",
            )
    else:
        entry.setdefault("ok", False)
        entry.setdefault("error", f"timing run exit {code}")
    s.save_calibration()
    return out if ok else None


def plan_fixed(fixed_plan: str, n_runs: int, n_epochs: int) -> dict:
    """The caller fixes the plan (e.g. to finish the runs of an earlier recording with its
    settings): no calibration, the whole budget goes to the grid."""
    mode, precision = fixed_plan.split("-")
    plan = dict(variant=fixed_plan, mode=mode, precision=precision, grid_s=None)
    plan["fixed_by_caller"] = True
    log(f"plan fixed by the caller: {precision} {mode}, {n_runs} runs x {n_epochs} epochs")
    return plan


def plan_measured(s: Session, variants, reference_workers, n_runs: int, timing_out: Path):
    """Calibrate, time the compiled variants, choose the fastest plan whose grid fits the
    budget, and check it end to end with a timing run (its timing.json is the device's)."""
    budget, n_epochs = s.clock.budget_s, s.cfg["train"]["epochs"]
    # in order of need, should the time limit stop the child: the fallback plan, the
    # baseline of the speed-up, the seed's arithmetic
    refs = [f"reference-w{w}" for w in reference_workers]
    # a CPU without bf16 units emulates bf16 about 100x slower than fp32 (AMD EPYC, AVX2):
    # measuring it there only spends the calibration's time limit
    bf16 = ["eager-bf16"] if s.device != "cpu" or cpu_has_bf16() else []
    calibrate_in_child(s, ["ceiling", *bf16, *refs[:1], "eager-fp32", *refs[1:]], 0.15 * budget)
    for mode in ("graphs", "compiled"):
        if mode in variants and timing_in_child(s, f"{mode}-bf16", 0.3 * budget) is not None:
            break
    # fp32 compiled too, if the eager fp32/bf16 ratio says that its grid may fit
    fast = next((v for v in ("graphs-bf16", "compiled-bf16") if s.calib.get(v, {}).get("ok")), None)
    if fast and s.calib.get("eager-fp32", {}).get("ok") and s.calib.get("eager-bf16", {}).get("ok"):
        scale = epoch_seconds(s.calib["eager-fp32"], s.n_train) / epoch_seconds(
            s.calib["eager-bf16"], s.n_train
        )
        guess = n_runs * n_epochs * epoch_seconds(s.calib[fast], s.n_train) * scale
        if guess < 0.8 * (s.clock.left() - PACK_RESERVE_S - 60):
            timing_in_child(s, fast.replace("bf16", "fp32"), 0.2 * budget)
    plan = choose(s.calib, s.n_train, n_runs, n_epochs, s.clock.left() - PACK_RESERVE_S)
    # an eager plan: its own timing run checks it end to end
    if not s.calib[plan["variant"]].get("timing_ok"):
        if timing_in_child(s, plan["variant"], 0.15 * budget) is None:
            raise RuntimeError(f"the timing run of {plan['variant']} failed; see logs/")
    timing = s.work / "timing" / plan["variant"] / "timing.json"
    timing_out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(timing_out, read_regular(timing, MAX_TIMING_BYTES, "timing JSON"))
    log(
        f"plan: {plan['precision']} {plan['mode']}, {n_runs} runs x {n_epochs} epochs, "
        f"estimated {plan['grid_s']:.0f} s of {s.clock.left() - PACK_RESERVE_S:.0f} s"
    )
    return plan


def grid_runs(study_cfg: dict, lrs: list[float], device: str, work: Path) -> list[Run]:
    """The workflow's run folders of the grid (seed 0), in priority order."""
    settings = grid.settings_hash(study_cfg, device)
    runs = []
    for lr in lrs:
        tag = dict(head="softmax", lr=grid.lr_tag(lr), device=device, seed=0, hash=settings)
        folder = grid.RUN_DIR.format(**tag)
        runs.append(
            Run(
                lr=lr,
                rc=grid.run_config(study_cfg, "softmax", lr, device, 0),
                folder=work / folder,
                rel_folder=folder,
                checkpoint=work / "checkpoints" / f"lr{tag['lr']}.pt",
                log_path=work / "logs" / f"train-lr{tag['lr']}.log",
            )
        )
    return runs


def pack(work: Path, out_dir: Path) -> Path:
    tarball = out_dir / "device-run.tar.gz"

    def into(f) -> None:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            for item in sorted(work.iterdir()):
                if item.name != "checkpoints":  # too large to return, and not needed
                    tar.add(item, arcname=item.name, filter=_small_files)

    write_atomic(tarball, into)
    return tarball


def _small_files(info: tarfile.TarInfo):
    """Everything but the weights (exported apart) and the data cache (it came in)."""
    return None if info.name.endswith(("model.pt", ".npz")) else info


def summarize(env, calib, plan, runs, grid_wall, n_train, timing_out) -> dict:
    flop_per_image = 6 * macs_per_image(runs[0].rc.model)  # forward 2 MAC, backward 2x
    ceiling = calib.get("ceiling", {}).get("bf16_matmul_flops")
    rows = {}
    for variant, res in calib.items():
        if not res.get("ok") or "img_s" not in res:
            continue
        row = {"img_s": res["img_s"]}
        if "eval_s" in res or "epoch_s" in res:
            row["epoch_s"] = epoch_seconds(res, n_train)
            row["warmup_s"] = res["warmup_s"]
        row["tflops"] = res["img_s"] * flop_per_image / 1e12
        if ceiling:
            row["of_bf16_matmul"] = res["img_s"] * flop_per_image / ceiling
        rows[variant] = row
    out_runs = []
    for r in runs:
        entry = {
            "lr": grid.lr_tag(r.lr),
            "status": r.status,
            "epochs_done": r.epochs_done,
            "epochs": r.rc.epochs,
            "complete": r.status == "done",
            "wall_seconds": r.t_end - r.t_start,
            "fingerprint": r.rc.fingerprint(),
            "folder": r.rel_folder,
        }
        metrics = r.folder / "metrics.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            entry.update(
                final_test_acc=m["final_test_acc"],
                best_test_acc=m["best_test_acc"],
                final_train_acc=m["final_train_acc"],
                seconds_per_epoch=m["seconds_per_epoch"],
            )
        out_runs.append(entry)
    done_epochs = sum(r.epochs_done for r in runs)
    timing = json.loads(timing_out.read_text()) if timing_out.exists() else None
    return {
        "environment": env,
        "calibration": rows,
        "calibration_raw": calib,
        "flop_per_training_image": flop_per_image,
        "plan": {k: v for k, v in plan.items() if k != "alternatives"},
        "timing": timing,
        "runs": out_runs,
        "grid_wall_seconds": grid_wall,
        "grid_epochs_done": done_epochs,
        "aggregate_epochs_per_s": done_epochs / grid_wall if grid_wall > 0 else None,
    }


def print_summary(s: dict, tarball: Path) -> None:
    env = s["environment"]
    print("\n== device run summary")
    print(
        f"{env.get('gpu') or env['cpu']} | driver {env.get('driver')} | torch {env['torch']} "
        f"cuda {env['cuda']} cudnn {env['cudnn']} | commit {env['commit'][:12]}"
    )
    ceiling = s["calibration_raw"].get("ceiling", {})
    if ceiling.get("ok"):
        print(
            f"ceiling: bf16 matmul {ceiling['bf16_matmul_flops'] / 1e12:.0f} TFLOP/s, "
            f"fp32 matmul {ceiling['fp32_matmul_flops'] / 1e12:.0f} TFLOP/s"
        )
    print(f"{'variant':<14}{'img/s':>10}{'s/epoch':>9}{'TFLOP/s':>9}{'of bf16':>9}{'warmup s':>9}")
    for v, row in s["calibration"].items():
        print(
            f"{v:<14}{row['img_s']:>10.0f}{row.get('epoch_s', float('nan')):>9.2f}"
            f"{row['tflops']:>9.1f}{row.get('of_bf16_matmul', float('nan')):>9.3f}"
            f"{row.get('warmup_s', float('nan')):>9.1f}"
        )
    failed = [v for v, r in s["calibration_raw"].items() if not r.get("ok")]
    if failed:
        print(
            "failed: " + "; ".join(f"{v}: {s['calibration_raw'][v].get('error')}" for v in failed)
        )
    p = s["plan"]
    estimate = "fixed by the caller" if p["grid_s"] is None else f"estimated {p['grid_s']:.0f} s"
    print(f"plan: {p['precision']} {p['mode']}, {estimate}")
    if s["timing"]:
        t = s["timing"]
        print(
            f"timing stage: {t['epochs']} epochs, {t['seconds_per_epoch']:.2f} s/epoch "
            f"(first {t['seconds_first_epoch']:.2f} s), {t['train_images_per_s']:.0f} img/s"
        )
    print(f"{'lr':<7}{'epochs':>8}{'test acc':>10}{'best':>8}{'wall s':>8}  status")
    for r in s["runs"]:
        acc = f"{100 * r['final_test_acc']:.2f}" if "final_test_acc" in r else "-"
        best = f"{100 * r['best_test_acc']:.2f}" if "best_test_acc" in r else "-"
        print(
            f"{r['lr']:<7}{r['epochs_done']:>4}/{r['epochs']:<3}{acc:>10}{best:>8}"
            f"{r['wall_seconds']:>8.0f}  {r['status']}"
        )
    rate = s["aggregate_epochs_per_s"]
    print(
        f"grid: {s['grid_epochs_done']} epochs in {s['grid_wall_seconds']:.0f} s"
        + (f" = {rate:.2f} epochs/s aggregate" if rate else "")
    )
    print(f"packed: {tarball}")
