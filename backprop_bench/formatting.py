"""Numbers and tables as text, alike in every command: times with their unit, shares, significant digits, markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def seconds_text(value: float) -> str:
    if not np.isfinite(value):
        return ""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def percent_text(value: float) -> str:
    """A fraction as '1.2%'; '-' where it is not finite (unknown, or nothing could be detected)."""
    return f"{100 * value:.1f}%" if np.isfinite(value) else "-"


def significant(value: float, digits: int) -> str:
    """`value` to `digits` significant digits, never in exponent form: 1.00, 0.00970, 330."""
    if pd.isna(value):
        return ""
    if value == 0:
        return "0"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):.{max(decimals, 0)}f}"


def markdown(rows: pd.DataFrame) -> str:
    """A table as a markdown table, cells as they are."""
    header = "| " + " | ".join(rows.columns) + " |\n|" + "---|" * len(rows.columns)
    def cell(value) -> str:  # a | in a name would end the cell
        return str(value).replace("|", "\\|")

    return "\n".join([header] + ["| " + " | ".join(map(cell, r)) + " |" for r in rows.itertuples(index=False)])
