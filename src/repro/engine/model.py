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

import torch
from torch import nn

from ..plan.settings import ModelSpec


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
    def __init__(self, spec: ModelSpec | None = None):
        super().__init__()
        spec = spec or ModelSpec()
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
