"""Strings from files (recorded runs, timing JSONs, calibration caches, logs, configs)
made harmless for the place they are shown: a terminal, a spreadsheet, a figure. Each
function keeps ordinary text as it is and changes only what that place would execute
or interpret (the PDF's HTML is escaped by jinja2's autoescape, repro.report.pdf)."""

from __future__ import annotations

import unicodedata

# control (Cc) and format (Cf: bidi overrides, zero-width) characters, line and
# paragraph separators: a terminal acts on them or hides text behind them
_HIDDEN = {"Cc", "Cf", "Zl", "Zp"}


def for_terminal(text) -> str:
    """``text`` as one printable line: every control, escape, bidi or separator
    character shown as its Python escape (ESC as \\x1b, a newline as \\n)."""
    return "".join(
        ascii(ch)[1:-1] if unicodedata.category(ch) in _HIDDEN else ch for ch in str(text)
    )


# a cell starting with one of these is a formula to Excel, LibreOffice and Sheets
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def for_spreadsheet(value):
    """A CSV cell that no spreadsheet executes: text starting like a formula gets a
    leading apostrophe; numbers, and text that is a number (-0.5, +1e-3), stay as they are."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def for_figure(text) -> str:
    """``text`` for a matplotlib label, title or tick: every ``$`` escaped so that no
    math text is interpreted (a ``$`` pair in a device name would be parsed as TeX, and
    an unknown command stops the figures stage)."""
    return str(text).replace("$", r"\$")


def joined(names) -> str:
    """Names in the order first met, each once: "NVIDIA H100 80GB HBM3 and NVIDIA H200"."""
    return " and ".join(dict.fromkeys(map(str, names)))
