"""The description of a run: every setting that decides its result, in one place, with
no torch (planning, the recorded-runs checks and reporting read it; training runs it).

``RunConfig.fingerprint`` identifies a run's settings: checkpoints resume only into the
same fingerprint, and recorded runs are reused only for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from .paper import WIDTHS as PAPER_WIDTHS


@dataclass(frozen=True)
class ModelSpec:
    widths: tuple[int, ...] = PAPER_WIDTHS
    kernel_sizes: tuple[int, ...] = (1, 3, 5)
    pool_after: tuple[int, ...] = (2, 4, 5)
    hidden: int = 512
    dropout: float = 0.5
    head: str = "softmax"
    num_classes: int = 10
    in_channels: int = 3

    @classmethod
    def from_config(cls, model_cfg: dict, head: str | None = None) -> ModelSpec:
        keys = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in model_cfg.items() if k in keys}
        for k in ("widths", "kernel_sizes", "pool_after"):
            if k in kwargs:
                kwargs[k] = tuple(kwargs[k])
        if head is not None:
            kwargs["head"] = head
        return cls(**kwargs)


# torch.compile modes a run may ask for; True means inductor's default mode
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class RunConfig:
    lr: float
    seed: int = 0
    device: str = "cpu"
    epochs: int = 150
    batch_size: int = 128
    test_batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    precision: str = "fp32"  # fp32 | bf16 (autocast) | auto (resolved in the job)
    compile: bool | str = False  # False, True (inductor default) or one of COMPILE_MODES
    deterministic: bool = False  # cuda only; CPU runs are always deterministic
    model: ModelSpec = field(default_factory=ModelSpec)

    def fingerprint(self) -> str:
        """Hash of everything that changes the result (device-independent keys only)."""
        d = asdict(self)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def on_this_machine(self) -> RunConfig:
        """The description with the settings that depend on the machine resolved here, in
        the job: precision ``auto`` (bf16 on cuda, and on CPUs with AMX; fp32 else). The
        run folder keeps the description's ``auto``; metrics.json records the result."""
        if self.precision != "auto":
            return self
        from .devices import auto_precision

        return replace(self, precision=auto_precision(self.device))

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The inverse of ``asdict`` (a run description written as JSON)."""
        fields = dict(d)
        model = dict(fields.pop("model", {}))
        for k in ("widths", "kernel_sizes", "pool_after"):
            if k in model:
                model[k] = tuple(model[k])
        return cls(**fields, model=ModelSpec(**model))
