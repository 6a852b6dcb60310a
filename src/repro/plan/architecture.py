"""The model's table, per stage: output shape, parameters and multiply-accumulates per
image, counted from its ``ModelSpec`` with no torch (the report needs it; the model
itself is in repro.engine.model, and a test checks these counts against it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import ModelSpec


@dataclass
class LayerRow:
    name: str
    shape: str
    params: int
    macs: int = 0


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out  # weight and bias


def architecture_table(spec: ModelSpec, image_size: int = 32) -> list[LayerRow]:
    """Per-stage rows (output shape, parameters, multiply-accumulates per image)."""
    rows: list[LayerRow] = []
    size, cin = image_size, spec.in_channels
    branches = len(spec.kernel_sizes)
    for idx, cout in enumerate(spec.widths, start=1):
        # one Conv2d (with bias) per kernel size, the branch-weighting gate (a Linear, or
        # Linear-ReLU-Linear), BatchNorm2d once after the sum or once per branch
        params = sum(cin * cout * k * k + cout for k in spec.kernel_sizes)
        macs = sum(cin * cout * k * k * size * size for k in spec.kernel_sizes)
        if spec.gate == "mlp":
            params += _linear(cin, spec.gate_hidden) + _linear(spec.gate_hidden, branches)
            macs += cin * spec.gate_hidden + spec.gate_hidden * branches
        else:
            params += _linear(cin, branches)
            macs += cin * branches
        norms = branches if spec.branch_norm == "per_branch" else 1
        params += norms * 2 * cout
        kernels = ",".join(map(str, spec.kernel_sizes))
        name = f"Block {idx} (k={kernels}{_reading(spec)})"
        rows.append(LayerRow(name, f"{cout}x{size}x{size}", params, macs))
        cin = cout
        if idx in spec.pool_after:
            size //= 2
            rows.append(LayerRow("MaxPool 2x2", f"{cin}x{size}x{size}", 0))
    rows.append(LayerRow("Global average pool", f"{cin}", 0))
    # Linear -> ReLU -> BatchNorm1d -> Dropout -> Linear (-> Softmax)
    head_params = _linear(cin, spec.hidden) + 2 * spec.hidden
    head_params += _linear(spec.hidden, spec.num_classes)
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


def _reading(spec: ModelSpec) -> str:
    """The block's non-default readings, as the table names them."""
    parts = [f"MLP gate {spec.gate_hidden}"] if spec.gate == "mlp" else []
    parts += ["BN per branch"] if spec.branch_norm == "per_branch" else []
    return "".join(f"; {p}" for p in parts)


def macs_per_image(spec: ModelSpec, image_size: int = 32) -> int:
    return sum(r.macs for r in architecture_table(spec, image_size))
