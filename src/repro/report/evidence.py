"""What other public implementations of the seed's architecture brief report: the facts
Section 11 shows as context for its architecture readings (the wider blocks, the MLP
gate, BatchNorm per branch).

The seed's model follows a public CIFAR-10 coursework brief (blocks of parallel
convolutions weighted by a vector computed from the spatially averaged block input).
Public implementations of that brief were read from their own repositories on
2026-12-06 (the notes are ../shared/reference/independent-implementations.md); each row
gives the repository, the architecture as its code builds it, its training recipe and
the test accuracy it prints, as printed. None of them is the seed's code and each
trains with its own recipe, so they place our runs, they do not replicate the seed.

Abbreviations in the rows: "per branch" = conv, BatchNorm, ReLU on each branch before the
weighting; "after sum" = BatchNorm and ReLU once after the weighted sum; GAP = global
average pooling; sm(Lin) = softmax(Linear(GAP(x))).
"""

from __future__ import annotations

from dataclasses import dataclass

# the adopted widths (config/config.yaml's model.widths), as the rows write widths
ADOPTED_WIDTHS = "64-64-128-128-256-256"
HIGH = 89.0  # the accuracy the reading of the evidence starts from (percent)


@dataclass(frozen=True)
class Implementation:
    repository: str  # GitHub owner/name
    blocks: str  # blocks x convolutions per block (kernel sizes)
    widths: str
    gate: str
    norm: str  # where BatchNorm sits, and the pooling
    recipe: str  # optimiser, schedule, epochs, augmentation
    accuracy: float  # the test accuracy it prints, percent
    reading: str  # which epoch that accuracy is: final, best, or as printed


IMPLEMENTATIONS = (
    Implementation(
        "AbhimanyuW/CIFAR-10-Custom-Neural-Network-Project", "6 x 3 (3x3)",
        ADOPTED_WIDTHS, "sm(Lin)", "after sum, 1x1 residual; max-pool after blocks 2, 4, 6",
        "RMSprop 0.0015, cosine, 40 epochs, no augmentation", 86.85, "as printed",
    ),
    Implementation(
        "SamihaKamal/ClassificationNeuralNetwork", "3 x 4 (3x3)", "64-128-256",
        "ReLU(Lin)", "none; no pooling", "Adam 1e-3, 50 epochs, no augmentation", 71.31,
        "as printed",
    ),
    Implementation(
        "HarshMalik7/CNN-Architecture-for-CIFAR-10", "3 x 3/5/3 (3 to 11)", "32-64-128",
        "Linear", "per branch; no pooling", "Adamax 0.01 then 0.001, 45 epochs, flip, rotation",
        85.58, "as printed",
    ),
    Implementation(
        "salvakarimi/Deep-Learning-QMUL (baseline)", "5 x 3 (3, 5, 1)", "32 flat", "sm(Lin)",
        "per branch; no pooling", "Adam 1e-3, 100 epochs, no augmentation", 79.43, "best",
    ),
    Implementation(
        "salvakarimi/Deep-Learning-QMUL (final)", "6 x 4 (3x3)", "128 flat", "sm(Lin)",
        "per branch; no pooling", "SGD 0.1, cosine, 250 epochs, RandAugment, crop, flip",
        92.91, "best",
    ),
    Implementation(
        "amannaredi/ECS7026P_CIFAR_Dataset_Classification", "5 x 1/1/2/2/4 (3x3)", "512 flat",
        "sm(Lin)", "per branch, LeakyReLU; max-pool", "Adam 1e-3 constant, 50 epochs, crop, flip",
        89.48, "final (peak 90.06)",
    ),
    Implementation(
        "rashad-malik/CIFAR-10-Image-Classification", "10 x 4 (3x3)", "64 to 512",
        "softmax per channel", "per branch; max-pool after blocks 1-5",
        "Adam, cosine, 40 epochs, label smoothing", 86.84, "best",
    ),
    Implementation(
        "Nurarara/CifarDeepLearning", "3 x 3 (3x3)", "64-128-256", "sm(Lin)",
        "per branch, residual; no pooling", "SGD 0.05, cosine, 100 epochs, label smoothing",
        87.75, "as printed",
    ),
    Implementation(
        "siddheshtv/cifar10", "5 x 3 (3x3)", "64 to 1024", "LeakyReLU(Lin) per channel",
        "BatchNorm; no pooling", "AdamW 0.01, cosine, 50 epochs", 80.56, "as printed",
    ),
    Implementation(
        "KayiC/Neural_Network_and_Deep_Learning_coursework", "stem + 3 x 4 (3x3)", "64 flat",
        "Linear, ReLU, Linear (C/4), softmax", "none; no pooling",
        "SGD 0.01, step decay, 200 epochs, no augmentation", 70.23, "as printed",
    ),
    Implementation(
        "usmaan275/CNN", "stem + 2 x 4 (3x3)", "128 flat", "Linear, ReLU, Linear (C/4), softmax",
        "per branch; no pooling", "Adam 1e-3, step decay, 100 epochs", 80.68, "as printed",
    ),
)  # fmt: skip


def placement(ours: float, lr: str, n: int) -> str:
    """One sentence placing our reference's mean final test accuracy (percent, ``n`` runs
    at ``lr``) among the implementations."""
    same = [i for i in IMPLEMENTATIONS if i.widths == ADOPTED_WIDTHS]
    high = [i for i in IMPLEMENTATIONS if i.accuracy >= HIGH]
    widths = " and ".join(sorted({i.widths for i in high}))
    runs = f"{n} run{'s' if n != 1 else ''}"
    near = ", ".join(f"{i.accuracy:.2f} %" for i in same)
    return (
        f"Our reference reaches {ours:.2f} % at lr {lr} (mean final test accuracy of {runs}): "
        f"{'below' if ours < min(i.accuracy for i in same) else 'at or above'} the one "
        f"implementation with our widths ({near}, another optimiser and no augmentation), and "
        f"below the {len(high)} that report {HIGH:.0f} % or more ({widths}; each with its "
        "own recipe)."
    )
