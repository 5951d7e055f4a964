"""report.md / audit.md: a report's sections (``document``, made by ``sections.document``) as Markdown, readable
in a terminal and in a GitHub pull request. Tables are GitHub tables (numeric columns right-aligned); charts are
drawn as text bars in fenced blocks, with their numbers, so nothing is lost without a browser.

Contract: ``render(report)`` is a pure function of the report (no timestamps, no paths of this machine beyond
what the report holds), so the same build or audit gives the same file. Text from the data (an audit's
instruction previews, file names) can never become HTML or a link in a viewer that renders Markdown: table cells
have ``&``, ``<``, ``>`` as entities and ``[`` escaped; in prose every ``<`` that could open a tag (or an
autolink, a comment) is ``&lt;``, so "3 < 4" and ">= 0.8" stay as written. Chart labels sit in fenced blocks,
shown as code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.report.document import Block, Bullets, Cell, Chart, Document, Table, Text, cell_text, display_width, pad
from pipeline.report.sections import document
from schemas.audit import AuditReport
from schemas.report import BuildReport

BAR_WIDTH = 40  # characters of the longest bar
EIGHTHS = " ▏▎▍▌▋▊▉"
STACK_GLYPHS = "█▓▒░▚▞▖▗▘▝"  # one per part of a stacked bar, in order
CELL_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "|": "\\|", "\n": " ", "\r": " "})
TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # where CommonMark starts raw HTML or an autolink


def cell(value: Cell) -> str:
    """A table cell on one line, shown as the characters it holds by any Markdown viewer."""
    return cell_text(value).translate(CELL_ESCAPES)


def prose(text: str) -> str:
    """A heading, paragraph or bullet with no tag, comment or autolink a viewer could render."""
    return TAG_START.sub("&lt;", text)


def render(report: BuildReport | AuditReport) -> str:
    return render_document(document(report))


def render_document(doc: Document) -> str:
    out = [f"# {prose(doc.title)}", "", f"**{prose(doc.lead)}** {prose(doc.byline)}"]
    for section in doc.sections:
        out += ["", f"## {prose(section.title)}"]
        for block in section.blocks:
            out += ["", *render_block(block)]
    return "\n".join(out) + "\n"


def render_block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return [prose(block.text)]
    if isinstance(block, Bullets):
        return [f"- {prose(item)}" for item in block.items]
    if isinstance(block, Table):
        return table(block)
    return chart(block)


def table(block: Table) -> list[str]:
    header = [cell(c.name) for c in block.columns]
    align = ["---:" if c.numeric else "---" for c in block.columns]
    rows = [[cell(v) for v in row] for row in block.rows]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *[f"| {' | '.join(r)} |" for r in rows]]


def bar(value: float, top: float) -> str:
    """A bar of ``value`` against ``top`` (the longest, ``BAR_WIDTH`` characters) to an eighth of a character."""
    eighths = round(BAR_WIDTH * 8 * value / top) if top > 0 else 0
    return ("█" * (eighths // 8) + EIGHTHS[eighths % 8]).rstrip()


def number(value: float) -> str:
    return cell_text(int(value)) if float(value).is_integer() else f"{value:,.2f}"


def chart(block: Chart) -> list[str]:
    """Text bars in a fenced block: one line per label (per label and series when grouped), the value after."""
    width = max((display_width(label) for label in block.labels), default=0)
    lines: list[str] = []
    if block.kind == "stacked":
        totals = [sum(s.values[k] for s in block.series) for k in range(len(block.labels))]
        top = max(totals, default=0)
        lines.append("  ".join(f"{STACK_GLYPHS[i % len(STACK_GLYPHS)]} {s.name}" for i, s in enumerate(block.series)))
        for k, label in enumerate(block.labels):
            parts = _stack([s.values[k] for s in block.series], top)
            values = ", ".join(f"{s.name} {number(s.values[k])}" for s in block.series if s.values[k])
            lines.append(f"{pad(label, width)}  {parts} {number(totals[k])} ({values or 'none'})")
    else:
        top = max((v for s in block.series for v in s.values), default=0)
        grouped = len(block.series) > 1
        names = max((len(s.name) for s in block.series), default=0)
        for k, label in enumerate(block.labels):
            for i, s in enumerate(block.series):
                name = f"{s.name.ljust(names)}  " if grouped else ""
                shown = label if i == 0 else ""
                lines.append(f"{pad(shown, width)}  {name}{bar(s.values[k], top)} {number(s.values[k])}".rstrip())
    return [f"_{prose(block.title)} ({prose(block.unit)})_", "", "```text", *lines, "```"]


def _stack(values: Sequence[float], top: float) -> str:
    """Whole characters per part, rounded so the parts add up to the rounded total."""
    if top <= 0:
        return ""
    edges, running = [0], 0.0
    for value in values:
        running += value
        edges.append(round(BAR_WIDTH * running / top))
    return "".join(STACK_GLYPHS[i % len(STACK_GLYPHS)] * (edges[i + 1] - edges[i]) for i in range(len(values)))
