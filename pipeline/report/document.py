"""The section model of a report: the one model both renderers read (``markdown``, ``html``), and the helpers the
section builders share (``build_sections``, ``audit_sections``).

A ``Document`` is a title, a lead line and sections; a ``Section`` is a title and blocks: paragraphs, bullet
lists, tables (columns typed from their cells: numbers are right-aligned) and charts given as data (bar, grouped
bar, histogram, stacked bar), which report.md draws as text bars and report.html as inline SVG.

Contract: frozen dataclasses and pure helpers; ``table`` types a table's columns from its cells and ``cell_text``
is how every renderer writes a cell. Nothing here reads a clock or a path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from schemas.report import RuleCount


class Share(float):
    """A fraction shown as a percentage (a numeric column)."""


Cell = str | int | float | bool | None


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool = False
    badge: bool = False  # a short label (a severity) shown as a coloured tag in HTML


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """Bars per label: ``bar`` (one series, or several side by side), ``histogram`` (one series over ordered
    bins), ``stacked`` (the series are parts of each bar, in order)."""

    kind: Literal["bar", "histogram", "stacked"]
    title: str
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str = "records"


@dataclass(frozen=True)
class Text:
    text: str  # `code` in backticks


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


Block = Text | Bullets | Table | Chart


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]
    summary: bool = False


@dataclass(frozen=True)
class Document:
    title: str
    lead: str  # the one line to read if nothing else
    byline: str
    sections: tuple[Section, ...]

    def blocks(self, kind: type) -> list[Block]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, kind)]


def cell_text(value: Cell) -> str:
    """How every renderer writes a cell: integers with thousands separators, shares as percentages."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Share):
        return f"{value:.1%}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def table(names: Sequence[str], rows: Iterable[Sequence[Cell]], badges: Sequence[str] = ()) -> Table:
    """A table whose numeric columns are those where every cell is a number."""
    body = tuple(tuple(row) for row in rows)
    numeric = [bool(body) and all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool) or r[k] is None
                                  for r in body) for k in range(len(names))]
    return Table(tuple(Column(n, num, n in badges) for n, num in zip(names, numeric, strict=True)), body)


def display_width(text: str) -> int:
    """Columns the text takes in a terminal: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def counted(counts: dict[str, int]) -> str:
    """``reason 3, other 1``: most frequent first."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))



def bin_labels(edges: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"{lo}–{hi - 1}" for lo, hi in pairwise(edges)) + (f"{edges[-1]}+",)


def rule_table(first: str, found: dict[str, RuleCount]) -> Table:
    return table([first, "records", "examples"], [(k, v.count, ", ".join(v.examples)) for k, v in found.items()])
