"""Stage 2: train one (learning rate, device, seed) run.

The loop keeps the uint8 data set resident on the training device and augments it
there in one gather per batch (random 32x32 crop of the 4-pixel zero-padded image and
a random horizontal flip, drawn from a seeded generator), so no DataLoader or PIL work
sits in the hot loop. Everything that decides the result (weights init, data order,
crop offsets, flips, dropout) comes from ``seed``, and the whole state is checkpointed
atomically after every epoch: a killed or pre-empted run resumes from the last
completed epoch and, on CPU, ends byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..files import open_regular, rename_over, write_atomic
from ..plan import dataset
from ..plan.code_identity import code_identity
from ..plan.config import batch_size_problem
from ..plan.machine import package_versions
from ..plan.progress import ProgressFile, hms
from ..plan.settings import COMPILE_MODES, RunConfig
from . import data as data_mod
from .devices import device_name
from .model import Net, count_parameters
from .train_lock import Ancestry, RunLock

EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
STEP_COLUMNS = ["epoch", "step", "loss", "accuracy", "lr"]
TIME_COLUMNS = ["epoch", "seconds", "train_seconds", "train_images_per_s"]


class Preempted(Exception):
    """Raised from the SIGTERM handler: stop now, keep the last checkpoint."""


# the paper model's checkpoint (weights, optimizer, RNG) is about 40 MB
MAX_CHECKPOINT_BYTES = 4 * 2**30


def _on_sigterm(signum, frame):
    raise Preempted(f"signal {signum}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# The augmentation is torchvision's RandomCrop(SIDE, padding=PAD) + RandomHorizontalFlip:
# these three numbers go together. Each image is zero-padded by PAD on every side, and
# a SIDE x SIDE window is cut from the padded (SIDE + 2 * PAD)-pixel square at row and
# column offsets 0..MAX_OFFSET, so that a crop never leaves the padded image.
SIDE = 32  # CIFAR-10's image side
PAD = 4
MAX_OFFSET = 2 * PAD


class DeviceData:
    """The prepared data set on the training device, with batched augmentation."""

    def __init__(self, ds: data_mod.Dataset, device: torch.device):
        self.device = device
        to_nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        # Zero padding happens once for the whole set; crops are gathered from it.
        self.train_padded = nn.functional.pad(to_nchw(ds.x_train), (PAD,) * 4).to(device)
        self.y_train = torch.from_numpy(ds.y_train).to(device)
        self.mean = torch.tensor(dataset.MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(dataset.STD, device=device).view(1, 3, 1, 1) * 255
        self.x_test = self.normalize(to_nchw(ds.x_test).to(device))
        self.y_test = torch.from_numpy(ds.y_test).to(device)
        self.n_train = len(ds.y_train)
        # a crop's pixel positions relative to its offset, left to right and mirrored
        self.arange = torch.arange(SIDE, device=device)
        self.arange_mirrored = (SIDE - 1) - self.arange
        self.channels = torch.arange(3, device=device).view(1, 3, 1, 1)

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = (x_uint8.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last)

    def epoch_plan(self, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Data order, crop offsets and flips for one epoch, drawn on the CPU generator
        (so they are the same on every device) and moved to the device once."""
        n = self.n_train
        perm = torch.randperm(n, generator=gen)
        # randint's upper bound is exclusive: offsets 0..MAX_OFFSET
        dy = torch.randint(0, MAX_OFFSET + 1, (n,), generator=gen)
        dx = torch.randint(0, MAX_OFFSET + 1, (n,), generator=gen)
        flip = torch.randint(0, 2, (n,), generator=gen).bool()
        return tuple(t.to(self.device, non_blocking=True) for t in (perm, dy, dx, flip))

    def crops(self, idx, dy, dx, flip) -> torch.Tensor:
        """The uint8 crops (N, 3, SIDE, SIDE) of the padded training images ``idx`` at
        offsets ``dy``, ``dx``, mirrored where ``flip``.

        One advanced-indexing gather: image, channel, row and column indexes broadcast to
        N x 3 x SIDE x SIDE, so a batch is cropped and flipped by one kernel, without a
        loop over images or a second, masked copy for the flips."""
        rows = dy[:, None] + self.arange  # (N, SIDE)
        # a flipped crop reads its window's columns right to left
        cols = dx[:, None] + torch.where(flip[:, None], self.arange_mirrored, self.arange)
        image = idx[:, None, None, None]
        return self.train_padded[
            image, self.channels, rows[:, None, :, None], cols[:, None, None, :]
        ]

    def batch(self, idx, dy, dx, flip) -> tuple[torch.Tensor, torch.Tensor]:
        return self.normalize(self.crops(idx, dy, dx, flip)), self.y_train[idx]


def make_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def make_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
    graphs: bool = False,
):
    """One SGD step; returns (loss, number correct) as device tensors (no sync).
    ``graphs``: the model is compiled with CUDA graphs (reduce-overhead)."""
    criterion = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor):
        # before the forward: the last step's gradients (memory owned by CUDA graphs when
        # compiled with reduce-overhead) must be dead before the graphs run again
        opt.zero_grad(set_to_none=True)
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with autocast_for(device, precision):
            out = model(x)
        # the loss is taken in fp32; with the softmax head it sees probabilities, as the
        # seed's CrossEntropyLoss did
        loss = criterion(out.float(), y)
        loss.backward()
        opt.step()
        return loss.detach(), (out.argmax(1) == y).sum()

    return step


def make_steps(model: nn.Module, opt: torch.optim.Optimizer, device: torch.device, cfg):
    """The step for full batches (with ``cfg``'s compile mode) and the step for the
    epoch's one smaller batch: eager when compiled, since a compiled model would compile
    (and capture) a second graph for it; same weights and optimizer either way."""
    graphs = cfg.compile == "reduce-overhead"
    step = make_step(compiled(model, cfg.compile), opt, device, cfg.precision, graphs)
    last = make_step(model, opt, device, cfg.precision) if cfg.compile else step
    return step, last


def train_epoch(step, last_step, dd: DeviceData, gen: torch.Generator, batch_size: int):
    """One pass over the training set (the last, smaller batch kept and taken by
    ``last_step``); per-step losses, correct counts and batch sizes, fetched from the
    device once at the end."""
    perm, dy, dx, flip = dd.epoch_plan(gen)
    losses, corrects, sizes = [], [], []
    for batch in zip(*(t.split(batch_size) for t in (perm, dy, dx, flip)), strict=True):
        x, y = dd.batch(*batch)
        take = step if len(y) == batch_size else last_step
        loss, correct = take(x, y)
        losses.append(loss)
        corrects.append(correct)
        sizes.append(len(y))
    return torch.stack(losses).cpu().tolist(), torch.stack(corrects).cpu().tolist(), sizes


def autocast_for(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def evaluate(
    model, dd: DeviceData, batch: int, precision: str, num_classes: int, softmax_head: bool
):
    """Test loss, accuracy, confusion counts and per-image class probabilities (CPU)."""
    model.eval()
    loss_sum = torch.zeros((), device=dd.device)
    probs = []
    for start in range(0, len(dd.y_test), batch):
        x, y = dd.x_test[start : start + batch], dd.y_test[start : start + batch]
        with autocast_for(dd.device, precision):
            out = model(x).float()
        loss_sum += nn.functional.cross_entropy(out, y, reduction="sum")
        # the softmax head already outputs probabilities; the logits head does not
        probs.append(out if softmax_head else torch.softmax(out, dim=1))
    n = len(dd.y_test)
    probs = torch.cat(probs).cpu()
    # counted on the CPU: bincount has no deterministic CUDA kernel
    pairs = dd.y_test.cpu() * num_classes + probs.argmax(1)
    confusion = torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)
    return loss_sum.item() / n, confusion.diagonal().sum().item() / n, confusion, probs


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_csv(path: Path, columns: list[str], rows: list[tuple]) -> None:
    def fmt(v):
        return f"{v:.6f}" if isinstance(v, float) else str(v)

    text = ",".join(columns) + "\n" + "".join(",".join(map(fmt, r)) + "\n" for r in rows)
    write_atomic(path, text)


def device_rng_state(device: torch.device):
    """The accelerator's own generator (dropout on cuda/mps draws from it)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state()
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


# what a checkpoint of ours holds; anything less is treated as unreadable
CHECKPOINT_KEYS = ("fingerprint", "data", "model", "optimizer", "generator", "torch_rng", "state")


def read_checkpoint(path: Path, set_aside: bool = False) -> dict | None:
    """A checkpoint of ours, or None (none there, or unreadable: the run starts over).

    Loaded with ``weights_only``: our checkpoints hold only tensors and plain
    containers, and a file that needs anything else to unpickle (code, in a crafted
    one) is refused, never run. An unreadable file (empty, truncated, garbage, crafted)
    is moved aside with ``set_aside`` (by the run's trainer), so that no rerun trips on
    it again. RNG states stay CPU tensors; load_state_dict moves the weights."""
    if not path.exists():
        return None
    try:  # never a FIFO or device (opening one would hang), never larger than ours
        with open_regular(path, MAX_CHECKPOINT_BYTES, "checkpoint") as f:
            ck = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same case
        why = f"unreadable ({type(e).__name__})"
    else:
        if isinstance(ck, dict) and (not set_aside or all(k in ck for k in CHECKPOINT_KEYS)):
            return ck
        why = "not a checkpoint of this version of the project"
    if set_aside:
        set_checkpoint_aside(path, why)
    else:
        log(f"ignoring checkpoint {path}: {why}")
    return None


def set_checkpoint_aside(path: Path, why: str) -> None:
    aside = path.with_name(path.name + ".unreadable")
    rename_over(path, aside)
    log(f"checkpoint {path} is {why}; moved aside to {aside}, starting the run over")


def check_outputs(outdir: Path, checkpoint: Path | None) -> None:
    """Where the run will write, checked before any work."""
    if outdir.exists() and not outdir.is_dir():
        raise UserError(
            f"--out {outdir} is an existing file, not a folder; give a run folder "
            "(it is created) or move the file away"
        )
    if checkpoint is not None and checkpoint.is_dir():
        raise UserError(f"--checkpoint {checkpoint} is a folder; give a file path such as run.pt")
    problem = scratch_problem("--checkpoint", checkpoint, [outdir])
    if problem:
        raise UserError(problem)


def scratch_problem(flag: str, path: Path | None, outs: list[Path]) -> str | None:
    """Why a run's checkpoint or progress file may not be ``path``, or None: inside one of
    the run folders ``outs`` (or another run's folder, one with a metrics.json), the job
    would write over or delete, when done, a run's output (checked before any work)."""
    if path is None:
        return None
    where = Path(path).resolve()
    for out in outs:
        if where.is_relative_to(Path(out).resolve()):
            return (
                f"{flag} {path} lies in the run folder {out}, which the job writes; give a "
                "path outside every run folder (results/checkpoints/... as the workflow does)"
            )
    if (where.parent / "metrics.json").exists():
        return (
            f"{flag} {path} lies in the folder of another run ({where.parent} holds its "
            "metrics.json), whose files the job would overwrite or delete; give a path "
            "outside every run folder"
        )
    return None


def lock_path(outdir: Path, checkpoint: Path | None) -> Path:
    """Next to the checkpoint (results/checkpoints/...), else next to the run folder."""
    if checkpoint is not None:
        return checkpoint.with_name(checkpoint.name + ".lock")
    return outdir.with_name(outdir.name + ".lock")


def setup_device(cfg: RunConfig) -> torch.device:
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        # PyTorch's defaults, as the seed ran: TF32 convolutions, full-fp32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            # warn_only: an op without a deterministic CUDA kernel is named in the log
            # instead of stopping a long run
            torch.use_deterministic_algorithms(True, warn_only=True)
    return device


def load_data(cfg: RunConfig, cache: Path) -> data_mod.Dataset:
    """The prepared data set, refused before any work when ``cfg``'s batch size would
    leave a last batch of one image."""
    ds = data_mod.load(cache)
    problem = batch_size_problem(len(ds.y_train), cfg.batch_size)
    if problem:
        raise UserError(f"{problem} (data cache {cache})")
    return ds


@dataclass
class RunState:
    """A run between two epochs, as its checkpoint keeps it (with the global and the
    device's RNG states, which dropout draws from): weights, optimizer, the generator of
    data order and augmentation, and ``history``, the epochs done so far as a plain dict
    (epoch, epochs, steps, times, elapsed; after an epoch also confusion, confusions
    and probs)."""

    model: nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    history: dict


def fresh_state(cfg: RunConfig, device: torch.device) -> RunState:
    """A run before its first epoch, everything drawn from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)  # weight init and dropout
    model = Net(cfg.model).to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    history = {"epoch": 0, "epochs": [], "steps": [], "times": [], "elapsed": 0.0}
    return RunState(model, opt, torch.Generator().manual_seed(cfg.seed), history)


def restore_state(
    cfg: RunConfig, device: torch.device, checkpoint: Path | None, data_id: str, cache: Path
) -> RunState:
    """Where the run continues: from ``checkpoint`` when it is one of ours, of this
    configuration, trained on this data (``data_id``, the content hash of ``cache``) and
    restorable; else from the start. An unreadable or damaged checkpoint is set aside."""
    ck = read_checkpoint(checkpoint, set_aside=True) if checkpoint is not None else None
    if ck is not None and ck["fingerprint"] != cfg.fingerprint():
        log(f"ignoring {checkpoint}: it belongs to a different configuration")
        ck = None
    elif ck is not None and ck["data"] != data_id:
        log(f"ignoring {checkpoint}: it was trained on different data ({cache} changed)")
        ck = None
    state = fresh_state(cfg, device)
    if ck is None:
        return state
    try:
        load_checkpoint(state, ck, device, cfg.epochs)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint fails in many ways
        set_checkpoint_aside(checkpoint, f"damaged ({type(e).__name__}: {e})")
        return fresh_state(cfg, device)
    log(f"resumed from {checkpoint} after epoch {state.history['epoch']}/{cfg.epochs}")
    return state


def load_checkpoint(state: RunState, ck: dict, device: torch.device, epochs: int) -> None:
    """``ck`` into ``state`` and the RNGs; raises when any part does not fit (weights of
    another model, a history that no run of ``epochs`` epochs has)."""
    state.model.load_state_dict(ck["model"])
    state.opt.load_state_dict(ck["optimizer"])
    state.gen.set_state(ck["generator"])
    torch.set_rng_state(ck["torch_rng"])
    if device.type == "cuda" and ck.get("device_rng") is not None:
        torch.cuda.set_rng_state(ck["device_rng"])
    if device.type == "mps" and ck.get("device_rng") is not None:
        torch.mps.set_rng_state(ck["device_rng"])
    history = dict(ck["state"])
    if not 0 <= history["epoch"] <= epochs or len(history["epochs"]) != history["epoch"]:
        raise ValueError(f"epoch {history['epoch']} of {epochs}")
    state.history = history


def save_checkpoint(
    path: Path, fingerprint: str, data_id: str, state: RunState, device: torch.device
) -> None:
    ck = {
        "fingerprint": fingerprint,
        "data": data_id,
        "model": state.model.state_dict(),
        "optimizer": state.opt.state_dict(),
        "generator": state.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "device_rng": device_rng_state(device),
        "state": state.history,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, torch_bytes(ck))


def fit(
    cfg: RunConfig,
    dd: DeviceData,
    state: RunState,
    keep_steps: bool = True,
    after_epoch: Callable[[RunState], None] | None = None,
) -> dict:
    """Train ``state`` from its last completed epoch through ``cfg.epochs``; returns its
    history. ``keep_steps``: keep every step's loss and accuracy (steps.csv).

    ``state.history`` is complete for an epoch before ``after_epoch(state)`` runs (the
    caller's checkpoint, progress file and log line), so that a stop between epochs
    (SIGTERM, or ``Preempted`` raised by ``after_epoch``) leaves the epochs done."""
    step, last_step = make_steps(state.model, state.opt, dd.device, cfg)
    softmax_head = cfg.model.head == "softmax"
    for epoch in range(state.history["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        state.model.train()
        steps = train_epoch(step, last_step, dd, state.gen, cfg.batch_size)
        t_train = time.perf_counter() - t0
        test = evaluate(
            state.model,
            dd,
            cfg.test_batch_size,
            cfg.precision,
            cfg.model.num_classes,
            softmax_head,
        )
        seconds = time.perf_counter() - t0
        step_lr = cfg.lr if keep_steps else None
        record_epoch(state.history, epoch, steps, test, seconds, t_train, step_lr)
        if after_epoch is not None:
            after_epoch(state)
    return state.history


def record_epoch(
    history: dict,
    epoch: int,
    steps: tuple[list, list, list],
    test: tuple,
    seconds: float,
    train_seconds: float,
    step_lr: float | None,
) -> None:
    """Epoch ``epoch`` into ``history``: ``steps`` as train_epoch gives them, ``test`` as
    evaluate does; the steps themselves only with a ``step_lr`` (their lr column)."""
    losses, corrects, sizes = steps
    test_loss, test_acc, confusion, probs = test
    n = sum(sizes)
    train_loss = sum(v * s for v, s in zip(losses, sizes, strict=True)) / n
    train_acc = sum(corrects) / n
    if step_lr is not None:
        history["steps"] += [
            (epoch, i, losses[i - 1], corrects[i - 1] / sizes[i - 1], step_lr)
            for i in range(1, len(sizes) + 1)
        ]
    history["epochs"].append((epoch, train_loss, train_acc, test_loss, test_acc))
    history["times"].append((epoch, seconds, train_seconds, n / train_seconds))
    history["confusion"] = confusion.tolist()
    history.setdefault("confusions", []).append((epoch, *confusion.flatten().tolist()))
    # only the last epoch's are written out; kept in the history so that a run stopped
    # after its last epoch but before writing still has them
    history["probs"] = probs
    # the epoch count last: a stop before here is reported with the last checkpoint's
    history["epoch"] = epoch
    history["elapsed"] += seconds


def epoch_row(history: dict, i: int = -1) -> dict:
    """Epoch row ``i`` of ``history`` by column name (EPOCH_COLUMNS)."""
    return dict(zip(EPOCH_COLUMNS, history["epochs"][i], strict=True))


def time_rows(history: dict) -> list[dict]:
    """Every epoch's times by column name (TIME_COLUMNS)."""
    return [dict(zip(TIME_COLUMNS, row, strict=True)) for row in history["times"]]


def log_start(cfg: RunConfig, dd: DeviceData) -> None:
    log(
        f"run lr={cfg.lr} seed={cfg.seed} on {device_name(cfg.device)} ({cfg.precision}): "
        f"{dd.n_train} train / {len(dd.y_test)} test images, "
        f"{math.ceil(dd.n_train / cfg.batch_size)} steps/epoch"
    )


def log_epoch(history: dict, epochs: int) -> None:
    e = epoch_row(history)
    seconds = history["times"][-1][TIME_COLUMNS.index("seconds")]
    mean_epoch = history["elapsed"] / len(history["times"])
    log(
        f"epoch {e['epoch']}/{epochs} train loss {e['train_loss']:.4f} "
        f"acc {e['train_acc']:.4f} | test loss {e['test_loss']:.4f} acc {e['test_acc']:.4f}"
        f" | {seconds:.1f} s, elapsed {hms(history['elapsed'])}, "
        f"ETA {hms(mean_epoch * (epochs - e['epoch']))}"
    )


def stop_if_orphaned(ancestry: Ancestry, epoch: int, epochs: int) -> None:
    """Stop after ``epoch`` when the process that started this one is gone (a killed
    workflow leaves its jobs running); after the last epoch the run just finishes."""
    if epoch < epochs and ancestry.gone():
        raise Preempted("the death of the process that started it (workflow killed?)")


@contextlib.contextmanager
def stoppable(what_is_kept: Callable[[], str]):
    """SIGTERM (a scheduler's pre-emption) and ``Preempted`` inside end the process
    with exit 143 and one log line, naming ``what_is_kept()``; the handler before is
    put back however the block ends."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except Preempted as e:
        log(f"stopped by {e}; {what_is_kept()}")
        raise SystemExit(143) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def summarise(
    cfg: RunConfig,
    history: dict,
    n_train: int,
    n_test: int,
    parameters: int,
    data_id: str,
    wall_seconds: float,
    code: dict | None = None,
) -> dict:
    """A finished run's metrics.json; ``code``: commit, dirty flag and run-code hash as
    the job started (code_identity), kept as taken."""
    last = epoch_row(history)
    test_accs = [row[EPOCH_COLUMNS.index("test_acc")] for row in history["epochs"]]
    best = int(np.argmax(test_accs))
    return {
        "lr": cfg.lr,
        "seed": cfg.seed,
        "device": cfg.device,
        "device_name": device_name(cfg.device),
        "head": cfg.model.head,
        "precision": cfg.precision,
        "epochs": cfg.epochs,
        "n_train": n_train,
        "n_test": n_test,
        "steps_per_epoch": math.ceil(n_train / cfg.batch_size),
        "test_steps_per_epoch": math.ceil(n_test / cfg.test_batch_size),
        "parameters": parameters,
        "final_test_acc": last["test_acc"],
        "best_test_acc": test_accs[best],
        "best_epoch": best + 1,
        "final_train_acc": last["train_acc"],
        "final_train_loss": last["train_loss"],
        "final_test_loss": last["test_loss"],
        "train_seconds": history["elapsed"],
        "wall_seconds_this_process": wall_seconds,
        "seconds_per_epoch": history["elapsed"] / cfg.epochs,
        "fingerprint": cfg.fingerprint(),
        "data_content_sha256": data_id,
        "config": asdict(cfg),
        "versions": run_versions(),
        "code": code or {},
    }


def write_run(
    outdir: Path,
    history: dict,
    metrics: dict,
    weights: dict,
    test_labels: torch.Tensor,
    write_steps: bool,
) -> None:
    """The run folder: per-epoch, per-step and timing CSVs, the last epoch's confusion
    matrix and predictions, every epoch's confusion counts, weights and metrics."""
    outdir.mkdir(parents=True, exist_ok=True)
    write_csv(outdir / "epochs.csv", EPOCH_COLUMNS, history["epochs"])
    write_csv(outdir / "epoch_times.csv", TIME_COLUMNS, history["times"])
    if write_steps:
        write_csv(outdir / "steps.csv", STEP_COLUMNS, history["steps"])
    classes = list(dataset.CLASSES)
    write_csv(
        outdir / "confusion.csv",
        ["true"] + classes,
        [(c, *row) for c, row in zip(classes, history["confusion"], strict=True)],
    )
    n_cls = len(history["confusion"])
    write_csv(
        outdir / "confusion_by_epoch.csv",
        ["epoch"] + [f"t{t}p{p}" for t in range(n_cls) for p in range(n_cls)],
        history["confusions"],
    )
    predictions = predictions_csv(history["probs"], test_labels)
    write_atomic(outdir / "predictions.csv", predictions, root=outdir)
    write_atomic(outdir / "model.pt", torch_bytes(weights), root=outdir)
    write_atomic(outdir / "metrics.json", json.dumps(metrics, indent=2), root=outdir)


def train_run(
    cfg: RunConfig,
    cache: Path,
    outdir: Path,
    checkpoint: Path | None = None,
    write_steps: bool = True,
    progress: Path | None = None,
    gpu: dict | None = None,
) -> dict:
    """Train one run; write CSVs, confusion matrix, metrics and weights into ``outdir``,
    and, with ``progress``, the run's state there after every epoch (repro.plan.progress).
    ``gpu``: the GPU the job took (devices.take_gpu), recorded in metrics.json.
    One process at a time per run (a lock next to the checkpoint): a second trainer is
    refused before it touches the progress file the first one writes."""
    cfg = cfg.on_this_machine()  # precision auto, as the train command resolves it
    outdir = Path(outdir)
    check_outputs(outdir, checkpoint)
    problem = scratch_problem("--progress", progress, [outdir])
    if problem:
        raise UserError(problem)
    with RunLock(lock_path(outdir, checkpoint), str(outdir)):
        prog = ProgressFile(progress, cfg.epochs)
        prog.update()
        try:
            metrics = _train_run(cfg, cache, outdir, checkpoint, write_steps, prog, gpu)
        except SystemExit as e:
            state = "stopped" if e.code == 143 else "failed"
            prog.update(state=state, error=f"exit {e.code}")
            raise
        except KeyboardInterrupt:
            prog.update(state="stopped")
            raise
        except BaseException as e:
            first = (str(e).strip().splitlines() or [""])[0]
            prog.update(state="failed", error=f"{type(e).__name__}: {first}".rstrip(": "))
            raise
        prog.update(state="done")
        return metrics


def _train_run(
    cfg: RunConfig,
    cache: Path,
    outdir: Path,
    checkpoint: Path | None,
    write_steps: bool,
    prog: ProgressFile,
    gpu: dict | None = None,
) -> dict:
    t_start = time.perf_counter()
    code = code_identity()  # the code as this job starts: files may change while it trains
    ancestry = Ancestry()
    ds = load_data(cfg, cache)
    data_id = data_mod.content_hash(ds)
    dd = DeviceData(ds, setup_device(cfg))
    state = restore_state(cfg, dd.device, checkpoint, data_id, cache)
    if state.history["epoch"] > 0:
        prog.update(**_progress_fields(state.history))

    def after_epoch(state: RunState) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, cfg.fingerprint(), data_id, state, dd.device)
        prog.update(**_progress_fields(state.history))
        log_epoch(state.history, cfg.epochs)
        stop_if_orphaned(ancestry, state.history["epoch"], cfg.epochs)

    kept = lambda: f"checkpoint after epoch {state.history['epoch']} kept at {checkpoint}"  # noqa: E731
    with stoppable(kept):
        log_start(cfg, dd)
        history = fit(cfg, dd, state, write_steps, after_epoch)

    n_test = len(dd.y_test)
    wall_seconds = time.perf_counter() - t_start
    parameters = count_parameters(state.model)
    metrics = summarise(cfg, history, dd.n_train, n_test, parameters, data_id, wall_seconds, code)
    if gpu is not None:  # where it ran, like the thread count: not the run's identity
        metrics["gpu"] = gpu
    weights = state.model.state_dict()
    write_run(outdir, history, metrics, weights, dd.y_test.cpu(), write_steps)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return metrics


def _progress_fields(history: dict) -> dict:
    """What a progress file says about the epochs done so far."""
    last = epoch_row(history) if history["epochs"] else None
    times, elapsed = history["times"], history["elapsed"]
    return {
        "epoch": history["epoch"],
        "train_acc": last["train_acc"] if last else None,
        "test_acc": last["test_acc"] if last else None,
        "seconds_per_epoch": elapsed / len(times) if times else None,
        "elapsed": elapsed,
    }


def compiled(model: nn.Module, mode: bool | str) -> nn.Module:
    """The model as the training step calls it: eager, or torch.compile'd with static
    shapes (a dynamic batch dimension would give slower kernels to every step)."""
    if not mode:
        return model
    if mode is True:
        mode = "default"
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode {mode!r} is unknown; use one of {COMPILE_MODES}")
    return torch.compile(model, mode=mode, dynamic=False)


def predictions_csv(probs: torch.Tensor, labels: torch.Tensor) -> str:
    """Per test image (in the cache's order): true label, predicted class and the class
    probabilities, for paired tests between models (McNemar) and calibration."""
    k = probs.shape[1]
    head = ",".join(["index", "label", "pred"] + [f"p{c}" for c in range(k)])
    pred = probs.argmax(1).tolist()
    rows = [
        f"{i},{y},{p}," + ",".join(f"{v:.5f}" for v in row)
        for i, (y, p, row) in enumerate(zip(labels.tolist(), pred, probs.tolist(), strict=True))
    ]
    return head + "\n" + "\n".join(rows) + "\n"


def run_versions() -> dict:
    """The training packages' versions, with what only the imported torch knows on top:
    the CUDA it was built for and the cuDNN it loads, and the builds' own version
    strings. Those carry the local label (2.11.0+cu130) that a PyPI wheel's metadata
    leaves out (2.11.0); the recordings and reports show it."""
    import torchvision

    installed = package_versions(("numpy",))
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": installed["python"],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": installed["numpy"],
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
    }


def result_line(m: dict) -> str:
    """A finished run in one line (its metrics.json)."""
    return (
        f"run {m['head']} lr={m['lr']:g} {m['device']} seed={m['seed']}: {m['epochs']} epochs, "
        f"final train acc {m['final_train_acc']:.4f}, test acc {m['final_test_acc']:.4f} "
        f"(best {m['best_test_acc']:.4f} at epoch {m['best_epoch']}), "
        f"{hms(m['train_seconds'])} training, {hms(m['wall_seconds_this_process'])} wall "
        "in this process"
    )
