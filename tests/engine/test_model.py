"""The adopted architecture: exact size, shapes, heads and the softmax-loss floor."""

import math

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
