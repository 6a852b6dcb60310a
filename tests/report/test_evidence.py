"""Section 11's evidence table: the public implementations as data, and the sentence that
places our reference among them."""

from __future__ import annotations

import re

from repro.report import evidence


def test_rows_name_a_repository_and_a_printed_accuracy():
    rows = evidence.IMPLEMENTATIONS
    assert len(rows) == 11
    for r in rows:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+( \(\w+\))?", r.repository), r.repository
        assert 0 < r.accuracy < 100
    # the one with our widths, and the two at 89 % or more, as the notes give them
    same = [r.accuracy for r in rows if r.widths == evidence.ADOPTED_WIDTHS]
    assert same == [86.85]
    assert sorted((r.widths, r.accuracy) for r in rows if r.accuracy >= 89) == [
        ("128 flat", 92.91),
        ("512 flat", 89.48),
    ]


def test_the_sentence_places_our_reference_by_its_own_accuracy():
    below = evidence.placement(86.07, "0.01", 3)
    assert below.startswith(
        "Our reference reaches 86.07 % at lr 0.01 (mean final test accuracy of 3 runs)"
    )
    assert "below the one implementation with our widths (86.85 %" in below
    assert "below the 2 that report 89 % or more (128 flat and 512 flat" in below
    above = evidence.placement(87.5, "0.005", 1)
    assert "of 1 run)" in above and "at or above the one implementation" in above
