"""The adopted architecture: exact size, shapes, heads and the softmax-loss floor."""

import math
from dataclasses import replace

import pytest
import torch

from repro.engine.model import Net, count_parameters
from repro.plan import paper
from repro.plan.architecture import architecture_table, macs_per_image
from repro.plan.settings import ModelSpec


def test_paper_model_size():
    spec = ModelSpec()
    assert count_parameters(Net(spec)) == paper.PARAMETERS
    assert sum(r.params for r in architecture_table(spec)) == paper.PARAMETERS
    assert macs_per_image(spec) == pytest.approx(0.484e9, rel=0.01)


@pytest.mark.parametrize("head", ["softmax", "logits"])
def test_shapes_and_head(head):
    torch.manual_seed(0)
    model = Net(ModelSpec(widths=(8, 8, 16, 16, 32, 32), hidden=16, head=head)).eval()
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    sums = out.sum(dim=1)
    if head == "softmax":
        assert torch.allclose(sums, torch.ones(4), atol=1e-5) and (out >= 0).all()
    else:
        assert not torch.allclose(sums, torch.ones(4), atol=1e-3)


def test_pooling_shapes_in_architecture_table():
    rows = architecture_table(ModelSpec())
    shapes = [r.shape for r in rows if r.name.startswith(("Block", "MaxPool"))]
    assert shapes == [
        "64x32x32",
        "64x32x32",
        "64x16x16",
        "128x16x16",
        "128x16x16",
        "128x8x8",
        "256x8x8",
        "256x4x4",
        "256x4x4",
    ]


def test_block_branch_weights_are_a_softmax():
    model = Net(ModelSpec(widths=(4, 4, 4, 4, 4, 4), hidden=8))
    block = model.backbone[0]
    x = torch.randn(2, 3, 8, 8)
    a = torch.softmax(block.gate(x.mean(dim=(2, 3))), dim=1)
    manual = sum(a[:, i, None, None, None] * conv(x) for i, conv in enumerate(block.convs))
    block.train()
    assert torch.allclose(block(x), torch.relu(block.bn(manual)), atol=1e-6)


def test_softmax_head_loss_floor():
    """CrossEntropyLoss on Softmax output cannot go below log(1 + 9/e) for 10 classes,
    however confident and correct the network is."""
    floor = math.log(1 + 9 / math.e)
    assert floor == pytest.approx(1.4611, abs=1e-4)
    model = Net(ModelSpec(widths=(4, 4, 4, 4, 4, 4), hidden=8, head="softmax")).eval()
    with torch.no_grad():
        last = model.classifier[-2]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([50.0] + [0.0] * 9))  # certain of class 0
    out = model(torch.randn(3, 3, 32, 32))
    loss = torch.nn.functional.cross_entropy(out, torch.zeros(3, dtype=torch.long))
    assert loss.item() == pytest.approx(floor, abs=1e-4)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(),
        ModelSpec(widths=(8, 16, 24), kernel_sizes=(3,), pool_after=(1, 3), hidden=7),
        ModelSpec(widths=(4, 4), kernel_sizes=(1, 5, 7), pool_after=(), head="logits"),
    ],
)
def test_architecture_table_counts_what_the_model_has(spec):
    """The report's table is computed without torch; it must agree with the model."""
    rows = architecture_table(spec)
    assert sum(r.params for r in rows) == count_parameters(Net(spec))
    blocks = [m for m in Net(spec).backbone if hasattr(m, "convs")]
    assert [r.params for r in rows if r.name.startswith("Block")] == [
        count_parameters(b) for b in blocks
    ]


def test_mlp_gate_and_per_branch_norm_build_the_layers_counted_by_hand():
    """Block(3 -> 4), kernels 1 and 3, on an 8x8 image. Convolutions: 3*4*(1+9) weights
    + 2*4 biases = 128. Linear gate: 3*2 + 2 = 8; MLP gate (hidden 5): 3*5 + 5 + 5*2 + 2
    = 32. BatchNorm2d(4): 8 parameters, once after the sum or once per branch (16).
    Multiply-accumulates: 3*4*(1+9)*64 = 7680 for the convolutions, + 3*2 = 6 for the
    linear gate or + 3*5 + 5*2 = 25 for the MLP."""
    base = ModelSpec(widths=(4,), kernel_sizes=(1, 3), pool_after=(), hidden=2)
    cases = [
        (base, 128 + 8 + 8, 7680 + 6),
        (replace(base, gate="mlp", gate_hidden=5), 128 + 32 + 8, 7680 + 25),
        (replace(base, branch_norm="per_branch"), 128 + 8 + 16, 7680 + 6),
    ]
    for spec, params, macs in cases:
        block = Net(spec).backbone[0]
        assert count_parameters(block) == params
        row = architecture_table(spec, image_size=8)[0]
        assert (row.params, row.macs) == (params, macs)
    mlp = Net(cases[1][0]).backbone[0].gate
    assert [type(m) for m in mlp] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert (mlp[0].in_features, mlp[0].out_features, mlp[2].out_features) == (3, 5, 2)
    per_branch = Net(cases[2][0]).backbone[0]
    assert len(per_branch.bns) == 2 and not hasattr(per_branch, "bn")


def test_per_branch_block_normalises_each_branch_before_weighting():
    spec = ModelSpec(widths=(4,) * 6, hidden=8, gate="mlp", gate_hidden=3)
    block = Net(replace(spec, branch_norm="per_branch")).backbone[0].train()
    x = torch.randn(2, 3, 8, 8)
    a = torch.softmax(block.gate(x.mean(dim=(2, 3))), dim=1)
    manual = sum(
        a[:, i, None, None, None] * torch.relu(bn(conv(x)))
        for i, (conv, bn) in enumerate(zip(block.convs, block.bns, strict=True))
    )
    assert torch.allclose(block(x), manual, atol=1e-6)
    # the sum of weighted non-negative branches: no ReLU or BatchNorm after it
    assert (block(x) >= 0).all() and not hasattr(block, "bn")


@pytest.mark.parametrize(
    "widths", [(64, 64, 128, 128, 256, 256), (80, 80, 160, 160, 320, 320), (128,) * 6]
)
def test_architecture_counts_of_the_studys_readings_match_torch(widths):
    """The plan's counts (no torch) of the why study's shapes against the model's."""
    for spec in (
        ModelSpec(widths=widths),
        ModelSpec(gate="mlp"),
        ModelSpec(branch_norm="per_branch"),
    ):
        assert sum(r.params for r in architecture_table(spec)) == count_parameters(Net(spec))
