"""The device command fed with a queue (``python -m repro device-run --queue queue.json``):
the runs a study still lacks, first to train first, trained on one GPU in packs.

1. Read the queue (``read_queue``: the one place that knows its format) and prepare
   each distinct data section from the archive that travelled with the checkout.
2. Measure (``--measure-s``; scripts/gpu_session.sh gives 100 s) the aggregate epochs/s
   of the layouts on the first run's model shape, in its arithmetic (repro.engine.layouts):
   one run in one process (today), wide packs (``--wide-ks``; K = 2, 4, 8 by default,
   K = 4 in gpu_session.sh; repro.engine.pack_run), and the fallback, several single-run
   processes at once (under a private MPS daemon where the machine has one); and the
   bf16 matmul ceiling.
3. Plan: for each layout, the longest prefix of the queue whose whole runs fit the
   budget at the measured speed (runs are never left half done by the plan); the layout
   that fits most runs, ties to the fastest.
4. Train the planned runs with it, each run in its workflow folder; then, if the plan
   kept its time back, the wide equality check (``--wide-check K``); pack the run
   folders, the measurements, the plan and the logs into the tarball that
   ``python -m repro record --add`` takes.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from contextlib import nullcontext
from pathlib import Path

import yaml

from ..errors import UserError
from ..files import read_json_bounded, read_regular, write_atomic
from ..plan import config as config_mod
from ..plan import description, grid, schema
from ..plan.architecture import macs_per_image
from ..plan.settings import RunConfig
from . import data as data_mod
from . import device_run as dr
from .mps import mps_daemon

TODAY_EPOCHS_PER_S = 0.70  # BENCHMARKS.md: two or three processes on an H100, bf16 graphs
MAX_QUEUE_BYTES = 4 * 2**20
FOLDER = re.compile(
    r"results/runs/(softmax|logits)/lr([0-9.e+-]+)/(cpu|cuda|mps)/seed(\d+)/([0-9a-f]{8})"
)
WIDE_KS = (2, 4, 8)
CHECK_S = 45.0  # the wide equality check's limit (two eager passes over 4,096 images)
# seconds for the single run's second measurement where no layout was measured
RETRY_S = 60.0
# a variant's name as the config allows it: it becomes part of file names in the work
# folder (run descriptions, checkpoints, logs)
VARIANT = re.compile(
    schema.load()["properties"]["variants"]["items"]["properties"]["name"]["pattern"]
)


@dataclasses.dataclass
class QueuedRun:
    rc: RunConfig
    folder: str
    variant: str
    data: dict
    status: str = "planned"
    layout: str | None = None
    t_start: float = 0.0
    t_end: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.variant}-lr{grid.lr_tag(self.rc.lr)}-seed{self.rc.seed}"


# ---- the queue ---------------------------------------------------------------------


def read_queue(path: Path, device: str, default_data: dict, archive: Path) -> list[QueuedRun]:
    """The queue's runs in order. Each entry names its run folder and carries its run
    description (``description``, or ``run`` as first announced) and data section
    (``data``; absent: ``default_data``); the folder must be the one the description
    trains into: its head, lr, device and seed, and the settings hash of the description
    on its data as read from ``archive`` (the one that travelled with the checkout); the
    device must be this command's."""
    q = read_json_bounded(Path(path), MAX_QUEUE_BYTES, "queue")
    entries = q.get("runs") if isinstance(q, dict) else None
    if not isinstance(entries, list):
        raise UserError(f"{path} is not a queue (no list 'runs'); write it with `repro queue`")
    runs = []
    for i, e in enumerate(entries):
        desc = e.get("description", e.get("run")) if isinstance(e, dict) else None
        try:
            rc = description.checked_any_size(desc)
        except UserError as err:
            raise UserError(f"{path}: run {i + 1} has no valid run description ({err})") from None
        folder = str(e.get("folder", ""))
        m = FOLDER.fullmatch(folder)
        want = (rc.model.head, grid.lr_tag(rc.lr), rc.device, str(rc.seed))
        if not m or m.groups()[:4] != want:
            raise UserError(
                f"{path}: run {i + 1}'s folder {config_mod.short(folder)} does not name its "
                f"run {want}"
            )
        if rc.device != device:
            raise UserError(
                f"{path}: run {i + 1} is for {rc.device}, this command trains on {device}; "
                "write the queue for this device"
            )
        variant = e.get("variant", "paper")
        if not isinstance(variant, str) or not VARIANT.fullmatch(variant):
            raise UserError(
                f"{path}: run {i + 1}'s variant {config_mod.short(variant)} is not a variant "
                "name (lower-case letters, digits, - and _); write the queue with `repro queue`"
            )
        data = e.get("data") or default_data
        problem = _data_problem(data)
        if problem:
            raise UserError(f"{path}: run {i + 1}'s data {problem}; write it with `repro queue`")
        # the hash stands for every other setting (precision, sizes, data): a folder of
        # another setting would record this run as that one
        own = trained_hash(rc, data, archive)
        if m[5] != own:
            raise UserError(
                f"{path}: run {i + 1}'s folder {folder} carries the settings hash {m[5]}, but "
                f"its description on its data (from {archive.name}) hashes to {own}; write "
                "the queue with `repro queue` where this archive is the config's data"
            )
        runs.append(QueuedRun(rc.on_this_machine(), folder, variant, data))
    if len({r.folder for r in runs}) != len(runs):
        raise UserError(f"{path} lists a run folder twice; write the queue again")
    return runs


def trained_hash(rc: RunConfig, data: dict, archive: Path) -> str:
    """The settings hash (grid.settings_hash) of what this command trains for a queued
    run: its description (precision unresolved, as the planner hashes it) on its data
    section, read from ``archive`` as prepare_data reads it."""
    subset = data.get("subset") or {}
    section = {
        "source": "archive",
        "archive": str(archive),
        "archive_sha256": data.get("archive_sha256"),
        "subset": {k: subset.get(k) for k in ("train_per_class", "test_per_class")},
        "jpeg_quality": data.get("jpeg_quality"),
    }
    return grid.settings_hash(grid.description_config(rc, section), rc.device)


def _data_problem(data) -> str | None:
    """What is wrong with a queued run's data section, by the config's schema (checked
    here by hand: the GPU machine has no jsonschema); None if nothing. Its source and
    archive are replaced by the archive that travelled with the checkout."""
    if not isinstance(data, dict):
        return f"= {config_mod.short(data)} is not an object"
    unknown = sorted(set(data) - set(schema.node("data")["properties"]), key=str)
    if unknown:
        return f"key {config_mod.short(unknown[0])} is not a key of the config's data section"
    quality = data.get("jpeg_quality")
    if not schema.fits(schema.node("data.jpeg_quality"), quality):
        return f"jpeg_quality = {config_mod.short(quality)} is not null or an integer in 1-95"
    subset = data.get("subset") or {}
    sizes = list(schema.node("data.subset")["properties"])
    if not isinstance(subset, dict) or not set(subset) <= set(sizes):
        return f"subset = {config_mod.short(subset)} is not a mapping of {' and '.join(sizes)}"
    for key, n in subset.items():
        node = schema.node(f"data.subset.{key}")
        if not schema.fits(node, n):
            return f"subset.{key} = {config_mod.short(n)} is not {node['description']}"
    return None


def standin_queue(
    archive: Path,
    device: str,
    seeds=(1, 2),
    precision="fp32",
    subset=(None, None),
    epochs=None,
    model: dict | None = None,
) -> dict:
    """A queue of the paper grid (config/config.yaml) with ``seeds`` in ``precision``,
    seed by seed, for a session without the study's queue (``repro queue``); ``model``:
    overrides of the model section (tests)."""
    cfg = dr.paper_config(archive, subset, epochs)
    cfg["train"]["precision"] = precision
    cfg["model"].update(model or {})
    if device == "cuda":  # compiled whole (wide_step.compile_step), as the issue asks
        cfg["train"]["compile"] = "default"
    cfg["seeds"], cfg["devices"] = list(seeds), [device]
    h = grid.settings_hash(cfg, device)
    runs = []
    for seed in seeds:
        for lr in cfg["learning_rates"]:
            tag = dict(head="softmax", lr=grid.lr_tag(lr), device=device, seed=seed, hash=h)
            rc = grid.run_config(cfg, "softmax", lr, device, seed, resolve=False)
            runs.append(
                dict(
                    variant="paper",
                    folder=grid.RUN_DIR.format(**tag),
                    data=cfg["data"],
                    description=dataclasses.asdict(rc),
                )  # fmt: skip
            )
    return {"format": "repro-queue/1", "standin": True, "runs": runs}


def pack_key(r: QueuedRun) -> str:
    """Runs with the same key may train in one pack (pack.pack_problem)."""
    d = dataclasses.asdict(r.rc)
    d.pop("lr"), d.pop("seed")
    return json.dumps([d, r.data], sort_keys=True, default=str)


def prepare_data(
    runs: list[QueuedRun], archive: Path, work: Path, caches: dict[str, Path] | None = None
) -> dict[str, Path]:
    """One cache per distinct data section (from ``archive``), by data key; ``caches``:
    those prepared already (kept, not prepared again)."""
    caches = dict(caches or {})
    for r in runs:
        key = data_key(r)
        if key in caches:
            continue
        name = "cifar10" if not caches else f"cifar10-{len(caches)}"
        section = {**r.data, "source": "archive", "archive": str(archive)}
        caches[key] = work / "data" / f"{name}.npz"
        meta = data_mod.prepare(section, caches[key])
        dr.log(f"data {name}: {meta['n_train']} train / {meta['n_test']} test images")
    return caches


def data_key(r: QueuedRun) -> str:
    """Runs with the same key train on one data cache."""
    return json.dumps(r.data, sort_keys=True, default=str)


def cache_of(r: QueuedRun, caches: dict[str, Path]) -> Path:
    return caches[data_key(r)]


# ---- planning ----------------------------------------------------------------------


def make_jobs(runs: list[QueuedRun], width: int) -> list[list[QueuedRun]]:
    """Runs of one pack key, in queue order, in jobs of at most ``width``; jobs ordered
    by their first run's place in the queue."""
    open_jobs: dict[str, list[QueuedRun]] = {}
    jobs: list[list[QueuedRun]] = []
    for r in runs:
        job = open_jobs.get(pack_key(r))
        if job is None or len(job) == width:
            job = open_jobs[pack_key(r)] = []
            jobs.append(job)
        job.append(r)
    return jobs


def makespan(durations: list[float], slots: int) -> float:
    """Wall time of jobs started in order on ``slots`` concurrent slots."""
    free = [0.0] * slots
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free, default=0.0)


def job_seconds(job: list[QueuedRun], layout: dict) -> float:
    """A job's estimated wall time: each run trains at the layout's aggregate rate
    shared by all the runs it holds at once (a smaller pack is not slower per run)."""
    per_run = layout["epochs_per_s"] / (layout["width"] * layout["slots"])
    return max(r.rc.epochs for r in job) / per_run + layout["warmup_s"]


def fit(runs: list[QueuedRun], layout: dict, seconds: float) -> list[list[QueuedRun]]:
    """The jobs of the longest prefix of ``runs`` (their priority) that fits ``seconds``."""
    best: list[list[QueuedRun]] = []
    for m in range(1, len(runs) + 1):
        jobs = make_jobs(runs[:m], layout["width"])
        if makespan([job_seconds(j, layout) for j in jobs], layout["slots"]) > seconds:
            break
        best = jobs
    return best


def choose_layout(
    runs: list[QueuedRun], layouts: dict, seconds: float, only: str | None = None
) -> tuple[dict, list]:
    """The measured layout that fits the most whole runs; ties to the higher rate
    (``only``: this layout, if it worked)."""
    options = []
    for name, res in layouts.items():
        if not res.get("ok") or "epochs_per_s" not in res or only not in (None, name):
            continue
        layout = {"name": name, **{k: res[k] for k in ("epochs_per_s", "width", "slots")}}
        layout["warmup_s"] = res.get("warmup_s", 0.0)
        jobs = fit(runs, layout, seconds)
        options.append((sum(len(j) for j in jobs), layout["epochs_per_s"], layout, jobs))
    if not options:
        raise RuntimeError("no layout worked in the measurement; see logs/measure*.log")
    n, _, layout, jobs = max(options, key=lambda o: (o[0], o[1]))
    return layout, jobs


def plan_with_data(
    runs: list[QueuedRun], layouts: dict, seconds: float, data_s: float, ready: set, only=None
) -> tuple[dict, list]:
    """``choose_layout`` with the time the planned runs' data caches not yet prepared
    (``ready``: data keys prepared) will take, at ``data_s`` each: planned once with all
    of ``seconds``, then again without the caches that plan needs (which needs no more)."""
    layout, jobs = choose_layout(runs, layouts, seconds, only)
    extra = {data_key(r) for j in jobs for r in j} - ready
    if extra:
        layout, jobs = choose_layout(runs, layouts, seconds - len(extra) * data_s, only)
    return layout, jobs


def plan_with_check(
    runs: list[QueuedRun], layouts: dict, seconds: float, data_s: float, ready: set,
    only=None, check_s: float = 0.0,
) -> tuple[dict, list, bool]:  # fmt: skip
    """``plan_with_data``, and whether the wide equality check (``check_s``) runs after
    the training: only where keeping its time back trains as many runs. On the H200's
    rates it decides between one run and two: 560 s less about 20 s of data, 100 s of
    measuring and the 25 s reserve leave about 415 s; two runs under MPS (0.862 epochs/s
    together, 35.7 s of compile) need about 384 s, which 415 - 45 s would not hold."""
    layout, jobs = plan_with_data(runs, layouts, seconds, data_s, ready, only)
    if check_s <= 0:
        return layout, jobs, False
    kept = plan_with_data(runs, layouts, seconds - check_s, data_s, ready, only)
    if sum(map(len, kept[1])) < sum(map(len, jobs)):
        return layout, jobs, False
    return (*kept, True)


# ---- measuring ---------------------------------------------------------------------


def write_description(work: Path, name: str, rc: RunConfig) -> Path:
    path = work / "run-descriptions" / f"{name}.json"
    write_atomic(path, json.dumps(dataclasses.asdict(rc), indent=2))
    return path


def check_wide(s: dr.Session, r: QueuedRun, k: int, extra_env, limit: float = CHECK_S) -> dict:
    """The wide pack's GPU equality check in a child (``wide-check``: one eager epoch on 4,096
    images, twice, deterministic): ``wide_check.json`` says whether the two were bitwise
    equal. Bounded by ``limit`` seconds; the session goes on either way."""
    if limit < 5:
        dr.log(f"wide check (K = {k}) not run: {limit:.0f} s left before the deadline")
        return {"error": "no time left"}
    desc = write_description(s.work, "wide-check", r.rc)
    out = s.work / "wide_check.json"
    args = ["wide-check", "--run", str(desc), "--cache", str(s.cache), "--out", str(out)]
    code = dr.run_child([*args, "--k", str(k)], s.logs / "wide-check.log", limit, s.threads,
                        extra_env)  # fmt: skip
    res = json.loads(out.read_text()) if out.exists() else {"error": f"not finished (exit {code})"}
    dr.log(f"wide check (K = {k}, deterministic): {res.get('bitwise_equal', res.get('error'))}")
    return res


def measure_args(s: dr.Session, desc: Path, cache: Path, out: Path, names: list[str]):
    """A ``measure-layouts`` child's arguments: ``names`` measured into ``out``."""
    args = ["measure-layouts", "--run", str(desc), "--cache", str(cache), "--out", str(out)]
    return args + ["--steps", str(s.calibration_steps), "--layouts", *names]


def measure_layouts(s: dr.Session, r: QueuedRun, cache: Path, ks, procs, limit, extra_env):
    """The layouts' measurements (``layouts.json``): one child for the ceiling, the
    single run and the wide packs, then ``procs`` children at once (the fallback)."""
    desc = write_description(s.work, "measure", r.rc)
    out = s.work / "measure" / "layouts.json"
    # the wide packs before the single run: the H200's single and MPS figures are known
    # (BENCHMARKS.md), the wide ones are not, and a compile that outlasts the child's
    # time (seen: the first H200 session) must not take them all with it
    names = ["ceiling", *(f"wide-{k}" for k in ks), "single"]
    args = measure_args(s, desc, cache, out, names)
    code = dr.run_child(args, s.logs / "measure.log", 0.7 * limit, s.threads, extra_env)
    found = json.loads(out.read_text()) if out.exists() else {}
    for name in names:
        found.setdefault(name, {"ok": False, "error": f"not measured (exit {code})"})
    for name, res in found.items():
        if name != "ceiling":
            res.update(width=res.get("k", 1), slots=1)
    if procs > 1:
        res = measure_procs(s, desc, cache, procs, 0.3 * limit, extra_env)
        found[f"procs-{procs}"] = {**res, "under_mps": extra_env is not None}
    rescue_single(s, desc, cache, found, extra_env)
    write_atomic(s.work / "layouts.json", json.dumps(found, indent=2))
    return found


def rescue_single(s: dr.Session, desc: Path, cache: Path, found: dict, extra_env) -> None:
    """Where no layout in ``found`` was measured (a compile that outlasts its share was
    seen), a plan would train nothing: the single run's rate from a process measured
    beside another, else the single run measured again alone, with time of its own."""

    def none_measured() -> bool:
        return not any(res.get("ok") for name, res in found.items() if name != "ceiling")

    if none_measured():
        found.update(single_from_parts(found) or {})
    if none_measured():
        dr.log(f"no layout measured: the single run again, at most {RETRY_S:.0f} s")
        out = s.work / "measure" / "single-again.json"
        args = measure_args(s, desc, cache, out, ["single"])
        code = dr.run_child(args, s.logs / "measure-again.log", RETRY_S, s.threads, extra_env)
        again = json.loads(out.read_text()).get("single", {}) if out.exists() else {}
        if again.get("ok"):
            found["single"] = {**again, "width": 1, "slots": 1, "measured": "again, alone"}
        else:
            found["single"].setdefault("retry", f"not measured again (exit {code})")


def single_from_parts(found: dict) -> dict | None:
    """``{"single": ...}`` from the slowest process of a fallback measurement that did not
    finish as a whole, or None: beside another process a run trains no faster than alone,
    so a plan made with it finishes the runs it starts."""
    parts = [
        p
        for name, res in found.items()
        if name.startswith("procs-")
        for p in res.get("parts", [])
        if isinstance(p, dict) and p.get("ok") and p.get("epochs_per_s", 0) > 0
    ]
    if not parts:
        return None
    slowest = min(parts, key=lambda p: p["epochs_per_s"])
    return {"single": {**slowest, "width": 1, "slots": 1, "measured": "beside another process"}}


def measure_procs(s: dr.Session, desc: Path, cache: Path, n: int, limit: float, extra_env):
    """``n`` single-run measurements at once; their epochs/s add up."""
    outs = [s.work / "measure" / f"procs-{i}.json" for i in range(n)]
    procs = []
    for i, out in enumerate(outs):
        args = measure_args(s, desc, cache, out, ["single"])
        procs.append(dr.child(args, s.logs / f"measure-procs-{i}.log", s.threads, extra_env))
    t0 = time.monotonic()
    for p in procs:
        try:
            p.wait(timeout=max(1.0, limit - (time.monotonic() - t0)))
        except Exception:  # noqa: BLE001 - TimeoutExpired: the limit
            pass
        dr.stop(p, grace=5)
    got = [json.loads(o.read_text()).get("single", {}) if o.exists() else {} for o in outs]
    if not all(g.get("ok") for g in got):
        n_ok = sum(bool(g.get("ok")) for g in got)
        return {"ok": False, "error": f"{n_ok} of {n} measured", "parts": got}
    rate = sum(g["epochs_per_s"] for g in got)
    warm = max(g["warmup_s"] for g in got)
    return dict(ok=True, epochs_per_s=rate, warmup_s=warm, width=1, slots=n, parts=got)


# ---- training ----------------------------------------------------------------------


def job_args(job: list[QueuedRun], s: dr.Session, caches: dict) -> list[str]:
    """A job's ``python -m repro`` arguments: ``train`` for one run, ``train-pack`` else."""
    descs = [str(write_description(s.work, r.name, r.rc)) for r in job]
    outs = [str(s.work / r.folder) for r in job]
    cks = [str(s.work / "checkpoints" / f"{r.name}.pt") for r in job]
    cache = str(cache_of(job[0], caches))
    if len(job) == 1:
        return ["train", "--run", descs[0], "--cache", cache, "--out", outs[0],
                "--checkpoint", cks[0], "--threads", str(s.threads)]  # fmt: skip
    return ["train-pack", "--runs", *descs, "--cache", cache, "--outs", *outs,
            "--checkpoints", *cks, "--threads", str(s.threads)]  # fmt: skip


def run_jobs(jobs, layout: dict, s: dr.Session, caches: dict, extra_env) -> None:
    """Start the jobs in order on the layout's slots; at the deadline, stop what runs (a
    stopped run keeps its checkpoint and is not recorded)."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < layout["slots"]:
            job = pending.pop(0)
            name = "+".join(r.name for r in job)
            proc = dr.child(job_args(job, s, caches), s.logs / f"train-{name}.log", s.threads,
                            extra_env)  # fmt: skip
            for r in job:
                r.status, r.layout, r.t_start = "running", layout["name"], s.clock.elapsed()
            running.append((proc, job))
        time.sleep(0.5)
        for proc, job in [pr for pr in running if pr[0].poll() is not None]:
            running.remove((proc, job))
            proc.log_file.close()
            for r in job:
                ok = proc.returncode == 0 and (s.work / r.folder / "metrics.json").exists()
                r.status = "done" if ok else f"failed (exit {proc.returncode})"
                r.t_end = s.clock.elapsed()
                dr.log(f"{r.name}: {r.status}")
        if s.clock.left() < dr.PACK_RESERVE_S:
            for proc, job in running:
                dr.stop(proc)
                for r in job:
                    r.status, r.t_end = "stopped at the deadline", s.clock.elapsed()
            break


# ---- the command -------------------------------------------------------------------


def queue_device_run(out_dir: Path, work: Path, **kw) -> dict:
    """``queue_study`` below; whatever happens in it, no child outlives it, the MPS
    daemon is stopped and what was produced so far is packed into the tarball."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    summary = None
    try:
        with mps_daemon(work, dr.log) if kw.get("device") == "cuda" else nullcontext() as env:
            summary = queue_study(work=work, extra_env=env, **kw)
    finally:
        for proc in dr.CHILDREN:
            if proc.poll() is None:
                dr.stop(proc, grace=10)
        tarball = dr.pack(work, out_dir)
        dr.log(f"packed {tarball}")
    print_queue_summary(summary, tarball)
    return summary


def queue_study(
    work: Path,
    queue: Path | None,
    archive: Path,
    device: str = "cuda",
    budget_s: float = 560.0,
    measure_s: float = 90.0,
    steps: int = 60,
    ks: tuple[int, ...] = WIDE_KS,
    procs: int = 2,
    commit: str = "unknown",
    threads: int = 4,
    extra_env: dict | None = None,
    standin: dict | None = None,
    force_layout: str | None = None,
    wide_check: int = 0,
) -> dict:
    """Read (or write, ``standin``: kwargs of standin_queue) the queue, measure, plan,
    train, summarise."""
    clock = dr.Clock(budget_s)
    env = dr.environment(device, commit)
    write_atomic(work / "environment.json", json.dumps(env, indent=2))
    dr.log(f"device {env.get('gpu') or env['cpu']}; torch {env['torch']}; budget {budget_s:.0f} s")
    if queue is None:
        queue = work / "queue.json"
        write_atomic(queue, json.dumps(standin_queue(archive, device, **(standin or {}))))
    default = yaml.safe_load(dr.PAPER_CONFIG.read_text())
    config_mod.fill_defaults(default)
    runs = read_queue(queue, device, default["data"], archive)
    if Path(queue) != work / "queue.json":  # the queue it trained from goes back too
        write_atomic(work / "queue.json", read_regular(queue, MAX_QUEUE_BYTES, "queue"))
    if not runs:
        raise UserError(f"{queue} holds no run: the study has all its runs")
    # only the first run's data before measuring: a re-encoded variant's cache costs
    # about 20 s on the GPU machine, worth it only for the runs the plan can train
    t_data = clock.elapsed()
    caches = prepare_data(runs[:1], archive, work)
    data_s = clock.elapsed() - t_data
    n_train = data_mod.load(cache_of(runs[0], caches)).y_train.shape[0]
    s = dr.Session(default, cache_of(runs[0], caches), n_train, work, device, threads, steps, clock)
    layouts = measure_layouts(s, runs[0], s.cache, ks, procs, measure_s, extra_env)
    check_s = CHECK_S if wide_check > 1 else 0.0
    layout, jobs, check = plan_with_check(runs, layouts, clock.left() - dr.PACK_RESERVE_S,
                                          data_s, set(caches), force_layout, check_s)  # fmt: skip
    if check_s and not check:
        dr.log(f"wide check (K = {wide_check}) not run: its {check_s:.0f} s would cost a run")
    planned = [r for job in jobs for r in job]
    caches = prepare_data(planned, archive, work, caches)
    plan = {"queue": True, "layout": layout, "jobs": [[r.folder for r in j] for j in jobs]}
    write_atomic(work / "plan.json", json.dumps(plan, indent=2))
    dr.log(f"plan: {layout['name']} ({layout['epochs_per_s']:.3f} epochs/s), "
           f"{len(planned)} of {len(runs)} queued runs in {len(jobs)} jobs")  # fmt: skip
    t0 = clock.elapsed()
    run_jobs(jobs, layout, s, caches, extra_env)
    wall = clock.elapsed() - t0
    if check:  # bounded by what the deadline leaves, should the training have overrun
        left = clock.left() - dr.PACK_RESERVE_S
        check_wide(s, runs[0], wide_check, extra_env, min(check_s, left))
    summary = queue_summary(env, layouts, layout, runs, wall, s)
    write_atomic(work / "summary.json", json.dumps(summary, indent=2))
    return summary


def layout_ratios(layouts: dict, rc: RunConfig, n_train: int, n_test: int) -> dict:
    """Per layout: aggregate epochs/s, its ratio to today's 0.70 and to the bf16 matmul
    ceiling measured in the same command (FLOP of an epoch: 6 MAC-FLOP per training
    image, 2 per test image)."""
    macs = macs_per_image(rc.model)
    flop_per_epoch = n_train * 6 * macs + n_test * 2 * macs
    ceiling = layouts.get("ceiling", {}).get("bf16_matmul_flops")
    out = {}
    for name, res in layouts.items():
        if not isinstance(res, dict) or not res.get("ok") or "epochs_per_s" not in res:
            continue
        rate = res["epochs_per_s"]
        out[name] = {
            "epochs_per_s": rate,
            "vs_today_0.70": rate / TODAY_EPOCHS_PER_S,
            "of_bf16_matmul": rate * flop_per_epoch / ceiling if ceiling else None,
        }
    return out


def queue_summary(env, layouts, layout, runs, wall, s: dr.Session) -> dict:
    rows = []
    for r in runs:
        entry = {"variant": r.variant, "folder": r.folder, "lr": grid.lr_tag(r.rc.lr),
                 "seed": r.rc.seed, "status": r.status, "complete": r.status == "done",
                 "epochs": r.rc.epochs, "layout": r.layout, "fingerprint": r.rc.fingerprint(),
                 "wall_seconds": r.t_end - r.t_start}  # fmt: skip
        metrics = s.work / r.folder / "metrics.json"
        if metrics.exists():
            m = json.loads(metrics.read_text())
            entry.update({k: m.get(k) for k in ("final_test_acc", "best_test_acc", "layout")})
            entry["epochs_done"] = r.rc.epochs
        rows.append(entry)
    n_test = data_mod.load(s.cache).y_test.shape[0]
    done = sum(r.rc.epochs for r in runs if r.status == "done")
    return {
        "environment": env,
        "layouts": layout_ratios(layouts, runs[0].rc, s.n_train, n_test),
        "layouts_raw": layouts,
        "ceiling": layouts.get("ceiling"),
        "layout": layout,
        "plan": {"queue": True, "layout": layout["name"]},
        "runs": rows,
        "grid_wall_seconds": wall,
        "grid_epochs_done": done,
        "aggregate_epochs_per_s": done / wall if wall > 0 else None,
    }


def print_queue_summary(s: dict | None, tarball: Path) -> None:
    print("\n== device run summary (queue)")
    if s is not None:
        env = s["environment"]
        machine = env.get("gpu") or env["cpu"]
        print(f"{machine} | torch {env['torch']} | commit {env['commit'][:12]}")
        print(f"{'layout':<10}{'epochs/s':>10}{'vs 0.70':>9}{'of bf16':>9}")
        for name, row in s["layouts"].items():
            ceil = row["of_bf16_matmul"]
            print(f"{name:<10}{row['epochs_per_s']:>10.3f}{row['vs_today_0.70']:>9.2f}"
                  f"{ceil if ceil is None else round(ceil, 3)!s:>9}")  # fmt: skip
        print(f"chosen: {s['layout']['name']}")
        for r in s["runs"]:
            acc = r.get("final_test_acc")
            acc = "-" if acc is None else f"{100 * acc:.2f}"
            print(f"{r['folder']:<58}{acc:>7}  {r['status']}")
        print(f"trained: {s['grid_epochs_done']} epochs in {s['grid_wall_seconds']:.0f} s")
    print(f"packed: {tarball}")
