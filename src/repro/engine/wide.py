"""K runs of one model shape as one wide network: the runs' channels side by
side, so that one kernel per layer trains all of them.

Layout: run k owns channels ``k*C .. (k+1)*C - 1`` of every feature map, so each
convolution is one grouped convolution (``groups=K``) and BatchNorm over ``K*C``
channels normalises each run's channels with its own batch statistics (never across
runs). The first convolution's input is the K runs' own images stacked along channels
(``K*3``), so at training every run sees its own batch; at evaluation the one test
batch is repeated K times. The branch gates, the head's two Linears and the dropout
masks are per run (``einsum``/``bmm`` over a leading run dimension), and the head's
output is ``(K, N, classes)``, a softmax per run.

``WideNet.from_nets`` packs K ordinary ``Net``s (each initialised as the single-run path
initialises it) and ``unpack`` gives back K ``Net`` state dicts, running statistics
included; ``unpack_tensors`` does the same for any tensors shaped like the wide
parameters (the optimizer's momentum buffers).
"""

from __future__ import annotations

import torch
from torch import nn

from ..plan.settings import ModelSpec
from .model import Net

# how a Net tensor sits in its wide counterpart: "cat", the K runs' tensors end to end
# along dim 0 (channels); "stack", a new leading run dimension
CAT, STACK = "cat", "stack"


class WideBlock(nn.Module):
    """K runs' Block(cin -> cout): grouped branch convolutions, per-run gates (one
    Linear, or for ``gate="mlp"`` Linear, ReLU, Linear: ``gate_hidden_*`` first), one
    BatchNorm after the sum or one per branch (``branch_norm``), as Block has them."""

    def __init__(
        self,
        k: int,
        cin: int,
        cout: int,
        kernel_sizes: tuple[int, ...],
        gate: str = "linear",
        gate_hidden: int = 16,
        branch_norm: str = "after_sum",
    ):
        super().__init__()
        self.k, self.cin, self.cout = k, cin, cout
        self.mlp_gate, self.per_branch = gate == "mlp", branch_norm == "per_branch"
        branches = len(kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv2d(k * cin, k * cout, ks, padding=ks // 2, groups=k) for ks in kernel_sizes
        )
        gate_in = cin
        if self.mlp_gate:
            self.gate_hidden_weight = nn.Parameter(torch.empty(k, gate_hidden, cin))
            self.gate_hidden_bias = nn.Parameter(torch.empty(k, gate_hidden))
            gate_in = gate_hidden
        self.gate_weight = nn.Parameter(torch.empty(k, branches, gate_in))
        self.gate_bias = nn.Parameter(torch.empty(k, branches))
        if self.per_branch:
            self.bns = nn.ModuleList(nn.BatchNorm2d(k * cout) for _ in kernel_sizes)
        else:
            self.bn = nn.BatchNorm2d(k * cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = x.mean(dim=(2, 3)).view(n, self.k, self.cin)
        if self.mlp_gate:
            g = torch.einsum("nkc,khc->nkh", g, self.gate_hidden_weight) + self.gate_hidden_bias
            g = torch.relu(g)
        logits = torch.einsum("nkc,kbc->nkb", g, self.gate_weight) + self.gate_bias
        # each run's branch weights, repeated over that run's output channels
        a = torch.softmax(logits, dim=2).repeat_interleave(self.cout, dim=1)  # (N, K*C, B)
        # the same sum, in the same order, as Block.forward
        if self.per_branch:
            return sum(
                a[:, :, i, None, None] * torch.relu(bn(conv(x)))
                for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True))
            )
        out = sum(a[:, :, i, None, None] * conv(x) for i, conv in enumerate(self.convs))
        return torch.relu(self.bn(out))


class WideNet(nn.Module):
    """K runs of ``Net(spec)``; ``forward(x, masks)`` takes ``x`` of ``(N, K*3, H, W)``
    (run k's images in channels 3k..3k+2) and, in training with dropout, the per-run
    dropout masks ``(K, N, hidden)`` (already scaled by 1/(1-p), as nn.Dropout's);
    returns ``(K, N, classes)``."""

    def __init__(self, spec: ModelSpec, k: int):
        super().__init__()
        self.spec, self.k = spec, k
        layers: list[nn.Module] = []
        cin = spec.in_channels
        for i, width in enumerate(spec.widths, start=1):
            layers.append(
                WideBlock(
                    k, cin, width, spec.kernel_sizes, spec.gate, spec.gate_hidden, spec.branch_norm
                )
            )
            if i in spec.pool_after:
                layers.append(nn.MaxPool2d(2, 2))
            cin = width
        self.backbone = nn.Sequential(*layers)
        self.features = cin
        self.fc1_weight = nn.Parameter(torch.empty(k, spec.hidden, cin))
        self.fc1_bias = nn.Parameter(torch.empty(k, spec.hidden))
        self.bn = nn.BatchNorm1d(k * spec.hidden)
        self.fc2_weight = nn.Parameter(torch.empty(k, spec.num_classes, spec.hidden))
        self.fc2_bias = nn.Parameter(torch.empty(k, spec.num_classes))

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        n, k = x.shape[0], self.k
        feat = self.backbone(x).mean(dim=(2, 3)).view(n, k, self.features).transpose(0, 1)
        h = torch.relu(torch.baddbmm(self.fc1_bias[:, None], feat, self.fc1_weight.mT))
        # BatchNorm1d over the K runs' hidden units side by side: per run by construction
        h = self.bn(h.transpose(0, 1).reshape(n, -1)).view(n, k, -1).transpose(0, 1)
        if masks is not None:
            h = h * masks
        out = torch.baddbmm(self.fc2_bias[:, None], h, self.fc2_weight.mT)  # (K, N, classes)
        return torch.softmax(out, dim=2) if self.spec.head == "softmax" else out

    @classmethod
    def from_nets(cls, nets: list[Net]) -> WideNet:
        """The K nets side by side (their weights, BN statistics and counters)."""
        specs = {net.spec for net in nets}
        if len(specs) != 1:
            raise ValueError(f"a wide network needs one model shape; got {len(specs)}")
        ref = nets[0].classifier[1].weight
        wide = cls(nets[0].spec, len(nets)).to(device=ref.device, dtype=ref.dtype)
        states = [net.state_dict() for net in nets]
        packed = {
            wide_name: pack_tensors([s[name] for s in states], how)
            for wide_name, name, how in tensor_map(wide)
        }
        wide.load_state_dict(packed)
        return wide

    def unpack(self) -> list[dict[str, torch.Tensor]]:
        """K ``Net`` state dicts (copies), running statistics included."""
        return unpack_tensors(self, self.state_dict())


def tensor_map(wide: WideNet) -> list[tuple[str, str, str]]:
    """(wide state-dict name, Net state-dict name, CAT|STACK) for every tensor."""
    rows = []
    index = 0  # position in Net.backbone, which holds the same blocks and pools
    for module in wide.backbone:
        if isinstance(module, WideBlock):
            w, n = f"backbone.{index}", f"backbone.{index}"
            for b in range(len(module.convs)):
                rows += [
                    (f"{w}.convs.{b}.{p}", f"{n}.convs.{b}.{p}", CAT) for p in ("weight", "bias")
                ]
            # Block.gate: one Linear, or Sequential(Linear, ReLU, Linear)
            last = f"{n}.gate.2" if module.mlp_gate else f"{n}.gate"
            if module.mlp_gate:
                rows += [(f"{w}.gate_hidden_{p}", f"{n}.gate.0.{p}", STACK) for p in GATE]
            rows += [(f"{w}.gate_{p}", f"{last}.{p}", STACK) for p in GATE]
            bns = [f"bns.{b}" for b in range(len(module.convs))] if module.per_branch else ["bn"]
            rows += [(f"{w}.{bn}.{p}", f"{n}.{bn}.{p}", CAT) for bn in bns for p in BN_TENSORS]
        index += 1
    # Net.classifier: Flatten, Linear, ReLU, BatchNorm1d, Dropout, Linear(, Softmax)
    rows += [("fc1_weight", "classifier.1.weight", STACK), ("fc1_bias", "classifier.1.bias", STACK)]
    rows += [(f"bn.{p}", f"classifier.3.{p}", CAT) for p in BN_TENSORS]
    rows += [("fc2_weight", "classifier.5.weight", STACK), ("fc2_bias", "classifier.5.bias", STACK)]
    return rows


BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
GATE = ("weight", "bias")


def pack_tensors(tensors: list[torch.Tensor], how: str) -> torch.Tensor:
    if tensors[0].dim() == 0:  # num_batches_tracked: one counter, the same for every run
        if any(not torch.equal(t, tensors[0]) for t in tensors):
            raise ValueError("runs packed together must have taken the same number of steps")
        return tensors[0].clone()
    return torch.cat(tensors) if how == CAT else torch.stack(tensors)


def unpack_tensors(wide: WideNet, tensors: dict[str, torch.Tensor]) -> list[dict]:
    """Wide-shaped ``tensors`` (by wide state-dict name; any subset) as K Net-named
    dicts, in Net.state_dict()'s order."""
    out: list[dict] = [{} for _ in range(wide.k)]
    for wide_name, name, how in tensor_map(wide):
        if wide_name not in tensors:
            continue
        t = tensors[wide_name].detach()
        if t.dim() == 0:
            parts = [t] * wide.k
        else:
            parts = t.chunk(wide.k) if how == CAT else t.unbind(0)
        for k in range(wide.k):
            out[k][name] = parts[k].clone().contiguous()
    return out


def dropout_masks(gens: list[torch.Generator], shape: tuple[int, int], p: float, like):
    """Run k's dropout mask from ``gens[k]``, drawn exactly as nn.Dropout draws it from
    the global generator on the CPU (``empty_like(h).bernoulli_(1 - p).div_(1 - p)``), so
    a run's masks are its single-run masks when ``gens[k]`` carries that run's global
    generator state; ``None`` for p = 0 (nn.Dropout then draws nothing)."""
    if p == 0:
        return None
    masks = torch.empty((len(gens), *shape), dtype=like.dtype, device=like.device)
    for mask, gen in zip(masks, gens, strict=True):
        mask.bernoulli_(1 - p, generator=gen)
    return masks.div_(1 - p)
