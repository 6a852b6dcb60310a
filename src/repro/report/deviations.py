"""What a comparable study still does differently from the seed (its images, its
arithmetic, its architecture), each with the accuracy it may cost: the declared
allowance that widens a paper-vs-ours verdict. Read by the study (which knows its data
and precisions) and by the claims (which apply the allowance); it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass

# sha256 of the offline archive (data.OFFLINE_JPEG_Q75_SHA256; repeated here so that
# the reporting stages need not import the data stage)
OFFLINE_JPEG_Q75_SHA256 = "5489b54e63be1049940fccf3e3cb313fa101e99c3baec54ce543c39269a02a33"
JPEG_ALLOWANCE = 1.0  # points
# where the allowance's size comes from (said next to every verdict that needs it)
JPEG_ALLOWANCE_SOURCE = (
    "the README shipped with the offline archive cifar10-jpeg.tar.gz: its JPEG (quality"
    ' 75) images give accuracies "up to about 1 point below" the original release'
)


@dataclass(frozen=True)
class Deviation:
    """Something a comparable study still does differently from the seed, said where its
    numbers are compared, with the accuracy (points) it may cost: the allowance that
    widens the paper-vs-ours verdict on the side it explains (ours lower), 0 where
    nothing is known. ``label`` names the allowance in a verdict ("JPEG")."""

    what: str
    text: str
    allowance: float = 0.0
    label: str = ""
    source: str = ""


def deviations(data: dict, precisions: list[str], precision_effect: str = "") -> list[Deviation]:
    """The images, the arithmetic and the architecture, against the seed's.
    ``precision_effect``: what a variant in fp32 measured against these runs (why.py), said
    in place of "not measured" where such a variant has runs."""
    return [_images(data), _arithmetic(precisions, precision_effect), _architecture()]


def total_allowance(devs: list[Deviation]) -> float:
    return sum(d.allowance for d in devs)


def allowance_label(devs: list[Deviation]) -> str:
    """The allowances' names for a verdict cell: "JPEG" (or "" when none is declared)."""
    return " + ".join(d.label for d in devs if d.allowance)


def _images(data: dict) -> Deviation:
    source = str(data.get("source", ""))
    if data.get("sha256") == OFFLINE_JPEG_Q75_SHA256:
        return Deviation(
            "images",
            "the offline archive, a JPEG (quality 75) re-encoding of CIFAR-10, where the seed"
            f" used the original lossless images; expect up to about {JPEG_ALLOWANCE:g} point"
            " lower accuracy (our verdicts allow for it and say where they need it)",
            JPEG_ALLOWANCE,
            "JPEG",
            JPEG_ALLOWANCE_SOURCE,
        )
    if source.startswith("torchvision"):
        return Deviation("images", "the official CIFAR-10 download (lossless), as the seed")
    return Deviation("images", f"{source or 'unknown source'}, not known to be the seed's")


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
