"""One training step of a wide network (repro.wide): the K runs' batch gather, forward,
per-run losses, backward, a per-run-lr SGD update and accuracy, as one function of
tensors (no Python state changes between calls but the tensors'), so that
torch.compile can take it whole: with Dynamo's ``trace_autograd_ops`` (``CAPTURE``) the
backward is traced too and the step is one graph, no break (tests/test_wide.py; compiled
on the CPU, 3 steps agree with eager to 5e-7 in float32). The dropout masks come in as
an argument, drawn outside by per-run generators (repro.wide.dropout_masks).

The optimizer is torch.optim.SGD's update (weight decay added to the gradient, momentum
buffer ``m * buf + grad``, started at the first gradient, then ``p -= lr * buf``) with
one tensor per wide parameter and an exact per-slice learning rate: run k's slice of
every parameter is moved by run k's lr. One parameter group per run would need K
separate tensors per layer, concatenated again for every forward; a per-slice lr keeps
one tensor (one kernel) per layer whatever K is, and each slice's arithmetic is the
single run's (the buffers start at zero: ``m * 0 + g`` is ``g`` exactly, SGD's clone).
"""

from __future__ import annotations

import torch
from torch import nn

from .train import DeviceData, autocast_for
from .wide import CAT, WideNet, tensor_map


class WideSGD:
    """SGD with momentum and weight decay, run k's slices at ``lrs[k]``; momentum and
    weight decay are the same for every run (a pack shares them)."""

    def __init__(self, wide: WideNet, lrs: list[float], momentum: float, weight_decay: float):
        how = {name: h for name, _, h in tensor_map(wide)}
        self.names = [name for name, _ in wide.named_parameters()]
        self.params = [p for _, p in wide.named_parameters()]
        self.bufs = [torch.zeros_like(p) for p in self.params]
        self.momentum, self.weight_decay = momentum, weight_decay
        # whether the buffers hold a step yet (SGD's state is empty before the first)
        self.stepped = False
        lr = torch.tensor(lrs, dtype=self.params[0].dtype, device=self.params[0].device)
        self.neg_lrs = [
            _per_slice(-lr, p, how[name]) for name, p in zip(self.names, self.params, strict=True)
        ]

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        torch._foreach_mul_(self.bufs, self.momentum)
        torch._foreach_add_(self.bufs, grads)
        torch._foreach_addcmul_(self.params, self.bufs, self.neg_lrs)
        self.stepped = True

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def buffers(self) -> dict[str, torch.Tensor]:
        """Momentum buffers by wide parameter name (empty before the first step)."""
        return dict(zip(self.names, self.bufs, strict=True)) if self.stepped else {}

    def load_buffers(self, bufs: dict[str, torch.Tensor]) -> None:
        if not bufs:
            return
        for name, buf in zip(self.names, self.bufs, strict=True):
            buf.copy_(bufs[name])
        self.stepped = True


def _per_slice(values: torch.Tensor, p: torch.Tensor, how: str) -> torch.Tensor:
    """``values`` (K,) broadcast over ``p``'s run slices: the leading dim of a STACK
    tensor, consecutive blocks of dim 0 of a CAT one."""
    k = len(values)
    v = values.repeat_interleave(p.shape[0] // k) if how == CAT else values
    return v.view(-1, *([1] * (p.dim() - 1))).expand_as(p).contiguous()


def gather_batch(dd: DeviceData, idx, dy, dx, flip) -> tuple[torch.Tensor, torch.Tensor]:
    """The K runs' batches ((K, N) plans) as one input: run k's normalised crops in
    channels 3k..3k+2, and labels (K, N). The crops and the normalisation are
    DeviceData's, element for element."""
    k, n = idx.shape
    x = dd.normalize(dd.crops(idx.reshape(-1), dy.reshape(-1), dx.reshape(-1), flip.reshape(-1)))
    x = x.view(k, n, *x.shape[1:]).transpose(0, 1).reshape(n, -1, *x.shape[2:])
    return x.contiguous(memory_format=torch.channels_last), dd.y_train[idx]


# Dynamo's setting under which the whole step, backward included, is one graph
CAPTURE = {"trace_autograd_ops": True}


def compile_step(step, mode: bool | str):
    """``step`` torch.compile'd whole (static shapes, as train.compiled), traced under
    ``CAPTURE``; the setting is patched around each call (compilation happens at the
    first), not set for the process."""
    compiled = torch.compile(step, mode="default" if mode is True else mode, dynamic=False)

    def run(*args):
        with torch._dynamo.config.patch(**CAPTURE):
            return compiled(*args)

    return run


def make_wide_step(wide: WideNet, opt: WideSGD, dd: DeviceData, precision: str):
    """``step(idx, dy, dx, flip, masks)`` -> per-run (loss, number correct), (K,) device
    tensors, no sync. Each run's loss is its own batch mean (in fp32, as the single
    run's); their sum is backpropagated, so each run's gradient is its own."""
    criterion = nn.CrossEntropyLoss()

    def step(idx, dy, dx, flip, masks):
        opt.zero_grad()
        x, y = gather_batch(dd, idx, dy, dx, flip)
        with autocast_for(dd.device, precision):
            out = wide(x, masks)
        losses = torch.stack([criterion(out[k].float(), y[k]) for k in range(wide.k)])
        losses.sum().backward()
        opt.step()
        return losses.detach(), (out.argmax(2) == y).sum(1)

    return step
