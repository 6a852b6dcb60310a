"""The seed's CNN: six multi-kernel blocks with MLP-weighted branches, then an MLP head.

The seed report's Fig. 1 is missing; this is the specification the project adopts
(stated in the report as well):

* Block(Cin -> C): parallel Conv2d(Cin, C, k, padding=k//2) for each k in
  ``kernel_sizes``; branch weights a = softmax(Linear(Cin -> n_branches)(GAP(x)));
  out = ReLU(BatchNorm2d(sum_i a_i * conv_i(x))).
* Backbone: one block per entry of ``widths``; MaxPool2d(2, 2) after the blocks
  listed in ``pool_after`` (1-based); global average pooling.
* Classifier: Flatten -> Linear(C, hidden) -> ReLU -> BatchNorm1d -> Dropout ->
  Linear(hidden, classes) -> Softmax (``head="softmax"``, faithful) or raw logits
  (``head="logits"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

PAPER_WIDTHS = (64, 64, 128, 128, 256, 256)


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


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, padding=k // 2) for k in kernel_sizes)
        self.gate = nn.Linear(cin, len(kernel_sizes))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.gate(x.mean(dim=(2, 3))), dim=1)  # (N, branches)
        out = sum(a[:, i, None, None, None] * conv(x) for i, conv in enumerate(self.convs))
        return torch.relu(self.bn(out))


class GlobalAvgPool(nn.Module):
    """Spatial mean. Same as AdaptiveAvgPool2d(1) + flatten, but its backward is a plain
    reduction, which stays deterministic on CUDA (AdaptiveAvgPool2d's is not)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Net(nn.Module):
    def __init__(self, spec: ModelSpec = ModelSpec()):
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        cin = spec.in_channels
        for i, width in enumerate(spec.widths, start=1):
            layers.append(Block(cin, width, spec.kernel_sizes))
            if i in spec.pool_after:
                layers.append(nn.MaxPool2d(2, 2))
            cin = width
        layers.append(GlobalAvgPool())
        self.backbone = nn.Sequential(*layers)
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(cin, spec.hidden),
            nn.ReLU(),
            nn.BatchNorm1d(spec.hidden),
            nn.Dropout(spec.dropout),
            nn.Linear(spec.hidden, spec.num_classes),
        ]
        if spec.head == "softmax":
            head.append(nn.Softmax(dim=1))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class LayerRow:
    name: str
    shape: str
    params: int
    macs: int = 0
    extra: dict = field(default_factory=dict)


def architecture_table(spec: ModelSpec, image_size: int = 32) -> list[LayerRow]:
    """Per-stage rows (output shape, parameters, multiply-accumulates per image)."""
    model = Net(spec)
    rows: list[LayerRow] = []
    size, cin = image_size, spec.in_channels
    idx = 0
    for module in model.backbone:
        if isinstance(module, Block):
            idx += 1
            cout = module.bn.num_features
            macs = sum(cin * cout * k * k * size * size for k in spec.kernel_sizes)
            macs += cin * len(spec.kernel_sizes)
            rows.append(
                LayerRow(
                    f"Block {idx} (k={','.join(map(str, spec.kernel_sizes))})",
                    f"{cout}x{size}x{size}",
                    count_parameters(module),
                    macs,
                )
            )
            cin = cout
        elif isinstance(module, nn.MaxPool2d):
            size //= 2
            rows.append(LayerRow("MaxPool 2x2", f"{cin}x{size}x{size}", 0))
        else:
            rows.append(LayerRow("Global average pool", f"{cin}", 0))
    head_params = count_parameters(model.classifier)
    head_macs = cin * spec.hidden + spec.hidden * spec.num_classes
    rows.append(
        LayerRow(
            f"Classifier ({cin}-{spec.hidden}-{spec.num_classes}, {spec.head})",
            f"{spec.num_classes}",
            head_params,
            head_macs,
        )
    )
    return rows


def macs_per_image(spec: ModelSpec, image_size: int = 32) -> int:
    return sum(r.macs for r in architecture_table(spec, image_size))
