"""The Markdown pieces every table shares: a table from its header and rows, and an interval."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # riskq.analysis.aggregate loads rliable, which the sweep table does not need
    from riskq.analysis.aggregate import Interval


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (no trailing newline); every row has one cell per header column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def interval_text(interval: Interval | None, digits: int = 3) -> str:
    """``point [low, high]`` to ``digits`` significant digits; ``n/a`` for no interval."""
    if interval is None:
        return "n/a"
    point, low, high = (f"{v:.{digits}g}" for v in (interval.point, interval.low, interval.high))
    return f"{point} [{low}, {high}]"
