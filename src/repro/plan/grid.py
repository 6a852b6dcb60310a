"""The run grid: which runs a config asks for (head x learning rate x device x seed), each
run's folder and hash, and the one run description a training job receives."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import asdict, replace
from pathlib import Path

from ..errors import UserError
from . import machine
from .dataset import cache_path, data_identity, data_tag
from .progress import CHECKPOINT, PROGRESS
from .settings import AXES, RunConfig, config_keys
from .variants import entries


def lr_tag(lr: float) -> str:
    """A learning rate as run folders and flags spell it: the shortest text that reads
    back as the same float, so distinct rates never share a folder (`:g` made
    0.01000001 and 0.01000002 both lr0.01) and a run trains at its configured rate."""
    text = repr(float(lr))
    return text[:-2] if text.endswith(".0") else text


def resolve_devices(names: list[str], auto: str | None = None) -> list[str]:
    """Device names with ``auto`` resolved: to ``auto`` when given (status takes it from
    the run folders), else to what this host gives, guessed without torch
    (machine.likely_auto; a local run's start checks the guess against torch)."""
    auto = auto or machine.likely_auto()
    out = []
    for name in names:
        dev = auto if name == "auto" else name
        if dev not in out:
            out.append(dev)
    return out


def timing_devices(cfg: dict) -> list[str]:
    """The timing stage's devices: none when it is off; `auto` alone means every device
    this host has (the CPU and its accelerator)."""
    if not cfg["timing"]["enabled"]:
        return []
    names = cfg["timing"]["devices"]
    if names == ["auto"]:
        return resolve_devices(["cpu", "auto"])
    return resolve_devices(names)


def precision_for(cfg: dict, device: str) -> str:
    """The precision a run on ``device`` trains in, resolved on this machine."""
    p = cfg["train"]["precision"]
    return machine.auto_precision(device) if p == "auto" else p


def run_config(
    cfg: dict, head: str, lr: float, device: str, seed: int, resolve: bool = True
) -> RunConfig:
    """One run's description. ``resolve=False`` keeps what depends on the machine that
    runs the job (precision auto) for the job to resolve: what the workflow hands it."""
    rc = RunConfig.from_config(cfg, head, lr, device, seed)
    return rc.on_this_machine() if resolve else rc


def settings_hash(cfg: dict, device: str) -> str:
    """Short hash of everything that changes a run's result apart from the values
    already in its path (head, lr, device, seed): the output folder carries it, so a
    different configuration never overwrites a finished run."""
    # as configured, not as resolved on the planning host: on SLURM the login node's CPU
    # must not decide a compute node's precision (the job resolves it, metrics.json says)
    rc = run_config(cfg, "softmax", 1.0, device, 0, resolve=False)
    key = {
        "train": {k: v for k, v in rc.__dict__.items() if k not in ("lr", "seed", "device")},
        "data": data_tag(cfg),
    }
    key["train"]["model"] = {k: v for k, v in rc.model.identity().items() if k != "head"}
    identity = data_identity(cfg)
    if identity is not None:  # absent for the offline copy: its folders keep their hash
        key["data_identity"] = identity
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:8]


def description_config(rc: RunConfig, data: dict) -> dict:
    """A config with ``rc``'s settings and the data section ``data``: what settings_hash
    reads, for a run description read back (a queued run's folder must carry its hash)."""
    cfg: dict = {"data": data}
    for path, key in config_keys().items():
        if key in AXES:
            continue
        value = getattr(rc.model, path[6:]) if path.startswith("model.") else getattr(rc, path)
        section, name = key.split(".")
        cfg.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) else value
    return cfg


def variant_configs(cfg: dict) -> list[dict]:
    """The reference (``paper``) and every variant in priority order: dicts with name,
    reason and config (the variant's overrides merged over the setup)."""
    return entries(cfg)


def variant_config(cfg: dict, name: str) -> dict:
    for entry in variant_configs(cfg):
        if entry["name"] == name:
            return entry["config"]
    names = ", ".join(e["name"] for e in variant_configs(cfg))
    raise UserError(f"variant {name!r} is not in the config; its variants: {names}")


def runs(cfg: dict, auto: str | None = None) -> list[dict]:
    """Every training job, in the study's priority order: dict(variant, head, lr, device,
    seed, hash); ``auto`` as in resolve_devices. Variants in config order (the reference
    first); within one, seed by seed (every rate's first seed before any second seed),
    so that a study recorded in part has whole seeds."""
    devices = resolve_devices(cfg["devices"], auto)
    out, owner = [], {}
    for entry in variant_configs(cfg):
        vcfg, name = entry["config"], entry["name"]
        hashes = {d: settings_hash(vcfg, d) for d in devices}  # per device: it reads the data
        for device, h in hashes.items():
            if owner.setdefault((device, h), name) != name:
                raise UserError(
                    f"variant {name!r} has the same settings as {owner[(device, h)]!r} "
                    f"(run hash {h}); give it an override that changes a result, or remove it"
                )
        out += [
            dict(
                variant=name,
                head=head,
                lr=lr_tag(lr),
                device=device,
                seed=seed,
                hash=hashes[device],
            )
            for seed in vcfg["seeds"]
            for lr in vcfg["learning_rates"]
            for head in vcfg["heads"]
            for device in devices
        ]
    return out


def variant_of(cfg: dict, device: str, hash: str) -> str | None:
    """The variant whose runs on ``device`` carry the settings hash ``hash`` (a run
    folder's last part), or None when no variant of this config has it."""
    for entry in variant_configs(cfg):
        if settings_hash(entry["config"], device) == hash:
            return entry["name"]
    return None


RUN_DIR = "results/runs/{head}/lr{lr}/{device}/seed{seed}/{hash}"
# a run folder's parts back from its path (the fields of RUN_DIR)
RUN_DIR_PATTERN = re.compile(
    r"results/runs/(?P<head>[^/]+)/lr(?P<lr>[^/]+)/(?P<device>[^/]+)/seed(?P<seed>\d+)/(?P<hash>[^/]+)"
)
# where the wide layout is faster than runs one after the other: a GPU at batch 128 is
# under-occupied by one run; a CPU is not (0.95, 0.80, 1.10 times for 1, 2, 4 runs)
PACKED_DEVICES = ("cuda",)


def packs(cfg: dict, auto: str | None = None) -> list[list[dict]]:
    """The runs that train together (config key train.pack), as runs() lists them: on a
    packed device, each setting's runs (one device, hash and head: only the learning
    rate and seed differ) cut in priority order into chunks of at most train.pack runs.
    Packs are listed by their first run's place in the priority order. A chunk of one
    run is no pack (it trains alone, as every run does with train.pack 1 or on the CPU)."""
    size = cfg["train"]["pack"]
    if size < 2:
        return []
    settings: dict[tuple, list[tuple[int, dict]]] = {}
    for place, r in enumerate(runs(cfg, auto)):
        if r["device"] in PACKED_DEVICES:
            settings.setdefault((r["device"], r["hash"], r["head"]), []).append((place, r))
    chunks = [
        group[start : start + size]
        for group in settings.values()
        for start in range(0, len(group), size)
    ]
    chunks.sort(key=lambda chunk: chunk[0][0])
    return [[r for _, r in chunk] for chunk in chunks if len(chunk) > 1]


def pack_name(pack: list[dict]) -> str:
    """A pack's rule name, from its first run (a run is in one pack at most)."""
    first = pack[0]
    where = f"{first['head']}_{first['device']}_{first['hash']}_seed{first['seed']}_lr{first['lr']}"
    return "train_pack_" + re.sub(r"\W", "_", where)


def run_of_folder(folder: str) -> dict:
    """A run folder's head, lr, device, seed and hash (RUN_DIR read back)."""
    m = RUN_DIR_PATTERN.fullmatch(str(folder))
    if m is None:
        raise UserError(f"{folder} is not a run folder ({RUN_DIR}); request results/report.pdf")
    return m.groupdict()


def train_job_flags(cfg: dict, outputs: list[str]) -> str:
    """The train-pack command's run flags for a train job whose outputs are ``outputs``
    (one run's files or a pack's): each run's description, folder, checkpoint and progress
    file, shell-quoted. Everything follows from the run folders (their hash names the
    settings), so the workflow derives it from the outputs."""
    folders = [str(Path(o).parent) for o in outputs if Path(o).name == "metrics.json"]
    where = [run_of_folder(f) for f in folders]
    flags = ["--runs", *(run_description(cfg, **w) for w in where), "--outs", *folders]
    flags += ["--checkpoints", *(CHECKPOINT.format(**w) for w in where)]
    flags += ["--progress", *(PROGRESS.format(**w) for w in where)]
    return shlex.join(flags)


def recorded_expectations(cfg: dict) -> list[dict]:
    """Every run of the grid with the fingerprint and settings (asdict of RunConfig) its
    recorded copy must have; repro.plan.recorded checks them without importing torch."""
    if "auto" in cfg["devices"]:
        raise UserError(
            f"config key devices = {cfg['devices']} uses auto, which would resolve on this "
            "host, not where the runs were recorded; with recorded runs name the devices, "
            "e.g. devices: [cuda] as in config/recorded.yaml"
        )
    out = []
    for r in runs(cfg):
        vcfg = variant_config(cfg, r["variant"])
        rc = run_config(vcfg, r["head"], float(r["lr"]), r["device"], r["seed"])
        out.append({**r, "fingerprint": rc.fingerprint(), "settings": asdict(rc)})
    return out


# keys that change no result: left out of results/config.json's inputs, so that
# changing them reruns nothing (train.pack: how many runs a cuda job trains at once)
NO_RESULT_KEYS = ("estimate", "queue")
NO_RESULT_TRAIN_KEYS = ("pack",)


def result_config(cfg: dict) -> dict:
    out = {k: v for k, v in cfg.items() if k not in NO_RESULT_KEYS}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in NO_RESULT_TRAIN_KEYS}
    return out


def run_description(
    cfg: dict, head: str, lr: str, device: str, seed: str, hash: str, variant: str | None = None
) -> str:
    """The whole description of one run of the grid as JSON, handed to the train job as
    it is (`python -m repro train --run`); the job resolves precision auto itself. The
    folder's hash says which variant the run belongs to (``variant``, an entry of runs()
    may name it: it must agree)."""
    if variant is not None and variant_of(cfg, device, hash) != variant:
        raise UserError(f"run folder hash {hash} is not of variant {variant!r} of the config")
    return json.dumps(asdict(run_settings(cfg, head, lr, device, seed, hash)), sort_keys=True)


def run_settings(cfg: dict, head: str, lr: str, device: str, seed, hash: str) -> RunConfig:
    """The unresolved RunConfig of one run folder of the study (see run_description)."""
    name = variant_of(cfg, device, hash)
    if name is None:
        raise UserError(
            f"run folder hash {hash} matches no variant of the current config "
            f"({', '.join(settings_hash(e['config'], device) for e in variant_configs(cfg))}); "
            "request results/report.pdf instead of an old run"
        )
    return run_config(variant_config(cfg, name), head, float(lr), device, int(seed), False)


def run_cache(cfg: dict, device: str, hash: str) -> str:
    """The data cache a run folder trains on: its variant's (a data variant has its own)."""
    name = variant_of(cfg, device, hash)
    return cache_path(variant_config(cfg, name) if name else cfg)


def data_caches(cfg: dict) -> dict[str, dict]:
    """Every cache the study trains on: path -> the config of a variant that uses it."""
    out: dict = {}
    for entry in variant_configs(cfg):
        out.setdefault(cache_path(entry["config"]), entry["config"])
    return out


def timing_description(cfg: dict, device: str) -> str:
    """The timing run of ``device``: the grid's first run, for timing.epochs epochs."""
    rc = run_config(
        cfg, cfg["heads"][0], cfg["learning_rates"][0], device, cfg["seeds"][0], resolve=False
    )
    return json.dumps(asdict(replace(rc, epochs=cfg["timing"]["epochs"])), sort_keys=True)


def check_cluster_devices(cfg: dict) -> None:
    """On a cluster the jobs run elsewhere, but `auto` would resolve on the submit host
    (usually without a GPU), so there the devices must be named. (Locally the engine
    checks that every named device is present: engine.devices.check_presence.)"""
    if cfg.get("recorded"):
        return  # nothing trains: recorded runs are copied on the submit host
    for key, names in (("devices", cfg["devices"]), ("timing.devices", cfg["timing"]["devices"])):
        if "auto" in names and (key == "devices" or cfg["timing"]["enabled"]):
            raise UserError(
                f"config key {key} = {names} uses auto, which would resolve on this submit "
                f"host; on a cluster name the devices, e.g. --config 'devices=[cuda]' "
                "'timing={devices: [cuda]}'"
            )
