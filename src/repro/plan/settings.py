"""The description of a run: every setting that decides its result, in one place, with
no torch (planning, the recorded-runs checks and reporting read it; training runs it).

Each field says where the user's config keeps it (``config``: ``train.momentum``, or a
grid axis such as ``learning_rates`` of which a run takes one value), and takes its
default from the config's schema, the one source of defaults. The workflow builds a
run's description from the config through these keys (``from_config``), the train
command's flags are made from them (repro.cli), and the job reads the description as
JSON (``from_dict``).

``RunConfig.fingerprint`` identifies a run's settings: checkpoints resume only into the
same fingerprint, and recorded runs are reused only for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from . import paper, schema

# the grid's axes: a run takes one value of each of these config lists
AXES = ("heads", "learning_rates", "devices", "seeds")


def setting(config: str | None, default=MISSING):
    """A field of the description, kept in the user's config at ``config`` (None: a fixed
    fact, not configurable); its default from the schema unless given here."""
    if default is MISSING and config is not None and config not in AXES:
        default = schema.default(config)
        default = tuple(default) if isinstance(default, list) else default
    return field(default=default, metadata={"config": config})


@dataclass(frozen=True)
class ModelSpec:
    widths: tuple[int, ...] = setting("model.widths")
    kernel_sizes: tuple[int, ...] = setting("model.kernel_sizes")
    pool_after: tuple[int, ...] = setting("model.pool_after")
    hidden: int = setting("model.hidden")
    dropout: float = setting("model.dropout")
    head: str = setting("heads", "softmax")
    num_classes: int = setting(None, paper.N_CLASSES)
    in_channels: int = setting(None, 3)
    # the block's readings added after runs were recorded (their defaults: the adopted
    # reading); see identity() for how they stay out of earlier runs' hashes
    gate: str = setting("model.gate")
    gate_hidden: int = setting("model.gate_hidden")
    branch_norm: str = setting("model.branch_norm")

    def identity(self) -> dict:
        """The spec as the fingerprint and the settings hash see it: the later readings
        (``LATER_READINGS``) only where they differ from their default, and the gate's
        hidden size only for the MLP gate (the one layer it shapes), so that every run
        made before they existed keeps its fingerprint and its folder."""
        d = asdict(self)
        for name in LATER_READINGS:
            if d[name] == _DEFAULTS[name] or (name == "gate_hidden" and self.gate != "mlp"):
                del d[name]
        return d


LATER_READINGS = ("gate", "gate_hidden", "branch_norm")
_DEFAULTS = {f.name: f.default for f in fields(ModelSpec)}


def with_later_readings(config: dict) -> dict:
    """A recorded run's config (metrics.json) as a full description: a run made before
    the later readings existed lacks them and trained with their defaults (the only
    reading the model had), which its unchanged fingerprint then confirms. A field
    present is kept as it is, to be checked."""
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not any(name in model for name in ("widths", "hidden")):
        return config
    filled = {name: _DEFAULTS[name] for name in LATER_READINGS if name not in model}
    return {**config, "model": {**model, **filled}} if filled else config


# torch.compile modes a run may ask for; True means inductor's default mode
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class RunConfig:
    lr: float = setting("learning_rates")
    seed: int = setting("seeds", 0)
    device: str = setting("devices", "cpu")
    epochs: int = setting("train.epochs")
    batch_size: int = setting("train.batch_size")
    test_batch_size: int = setting("train.test_batch_size")
    momentum: float = setting("train.momentum")
    weight_decay: float = setting("train.weight_decay")
    # fp32 | bf16 (autocast) | auto: resolved in the job (on_this_machine)
    precision: str = setting("train.precision")
    # False, True (inductor's default mode) or one of COMPILE_MODES
    compile: bool | str = setting("train.compile")
    # cuda only; CPU runs are always deterministic
    deterministic: bool = setting("train.cuda_deterministic")
    model: ModelSpec = field(default_factory=ModelSpec, metadata={"config": "model"})

    def fingerprint(self) -> str:
        """Hash of everything that changes the result (device-independent keys only)."""
        d = {**asdict(self), "model": self.model.identity()}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def on_this_machine(self) -> RunConfig:
        """The description with the settings that depend on the machine resolved here, in
        the job: precision ``auto`` (bf16 on cuda, and on CPUs with AMX; fp32 else). The
        run folder keeps the description's ``auto``; metrics.json records the result."""
        if self.precision != "auto":
            return self
        from .machine import auto_precision

        return replace(self, precision=auto_precision(self.device))

    @classmethod
    def from_config(cls, cfg: dict, head: str, lr: float, device: str, seed: int) -> RunConfig:
        """One run of a validated config's grid: each field read from its config key."""
        axes = {"heads": head, "learning_rates": float(lr), "devices": device, "seeds": int(seed)}
        return _build(cls, cfg, axes)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The inverse of ``asdict`` (a run description written as JSON)."""
        values = dict(d)
        model = {k: tuple(v) if isinstance(v, list) else v for k, v in values.pop("model").items()}
        return cls(**values, model=ModelSpec(**model))


def _build(cls, cfg: dict, axes: dict):
    kwargs = {}
    for f in fields(cls):
        key = f.metadata["config"]
        if key == "model":
            kwargs[f.name] = _build(ModelSpec, cfg, axes)
        elif key in axes:
            kwargs[f.name] = axes[key]
        elif key is not None:
            section, name = key.split(".")
            value = cfg[section][name]
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def config_keys(cls=RunConfig) -> dict[str, str]:
    """Field path (``momentum``, ``model.hidden``) -> config key, for every configurable
    field: what the train command makes its flags from."""
    out = {}
    for f in fields(cls):
        key = f.metadata["config"]
        if key == "model":
            out.update({f"model.{k}": v for k, v in config_keys(ModelSpec).items()})
        elif key is not None:
            out[f.name] = key
    return out
