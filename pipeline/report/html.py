"""report.html / audit.html: a report's sections (``document``, made by ``sections.document``) as one
self-contained page.

Contract: ``render(report)`` is a pure function of the report. The page has inline CSS and inline SVG charts,
no JavaScript and no reference to anything outside it, so it opens offline and attached to an e-mail; the lead
line, a list of the sections and the summary sections come first, the details after; it is laid out for a
laptop screen (wide tables scroll on their own).
"""

from __future__ import annotations

import re
from html import escape

from pipeline.report.document import (
    Block,
    Bullets,
    Cell,
    Chart,
    Column,
    Document,
    Table,
    Text,
    cell_text,
    display_width,
)
from pipeline.report.sections import document
from schemas.audit import AuditReport
from schemas.report import BuildReport

WIDTH = 760  # SVG user units; charts scale down with the page
PALETTE = ("#4c78a8", "#e45756", "#f58518", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac")
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#222}
h1{font-size:22px;margin-bottom:6px}h2{font-size:17px;margin-top:30px;border-bottom:1px solid #ddd;padding-bottom:2px}
.lead{background:#f7f9fc;padding:10px 14px;border-radius:6px;border-left:4px solid #4c78a8}
nav{font-size:13px;color:#555;margin:10px 0 4px}nav a{color:#36c;text-decoration:none;margin-right:12px;
white-space:nowrap}.summary h2{border-bottom-color:#4c78a8}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;
vertical-align:top}th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}th.n{text-align:right}
code{background:#f2f2f2;padding:0 3px;border-radius:3px}
figure{margin:10px 0}figcaption{font-size:13px;color:#555}svg{max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#333}
.badge{border-radius:3px;padding:0 6px;font-size:12px;background:#eee}.badge.high{background:#e45756;color:#fff}
.badge.medium{background:#f58518;color:#fff}.badge.low{background:#72b7b2;color:#fff}
"""


def render(report: BuildReport | AuditReport) -> str:
    return render_document(document(report))


def render_document(doc: Document) -> str:
    nav = " ".join(f'<a href="#s{k}">{escape(s.title)}</a>' for k, s in enumerate(doc.sections))
    body = [f"<h1>{escape(doc.title)}</h1>",
            f'<p class="lead"><strong>{escape(doc.lead)}</strong> {_text(doc.byline)}</p>', f"<nav>{nav}</nav>"]
    for k, section in enumerate(doc.sections):
        blocks = "".join(render_block(b) for b in section.blocks)
        kind = ' class="summary"' if section.summary else ""
        body.append(f'<section id="s{k}"{kind}><h2>{escape(section.title)}</h2>{blocks}</section>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{escape(doc.title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _text(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def render_block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_text(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return table(block)
    return f"<figure><figcaption>{escape(block.title)} ({escape(block.unit)})</figcaption>{svg(block)}</figure>"


def table(block: Table) -> str:
    head = "".join(f'<th class="n">{escape(c.name)}</th>' if c.numeric else f"<th>{escape(c.name)}</th>"
                   for c in block.columns)
    rows = "".join("<tr>" + "".join(cell(c, v) for c, v in zip(block.columns, row, strict=True)) + "</tr>"
                   for row in block.rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def cell(column: Column, value: Cell) -> str:
    text = escape(cell_text(value))
    if column.badge:
        return f'<td><span class="badge {re.sub(r"[^a-z]", "", text.lower())}">{text}</span></td>'
    return f'<td class="n">{text}</td>' if column.numeric else f"<td>{text}</td>"


def svg(block: Chart) -> str:
    return histogram_svg(block) if block.kind == "histogram" else bars_svg(block)


def _open(height: float, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" width="{WIDTH}" '
            f'height="{height:.0f}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>')


def _number(value: float) -> str:
    return cell_text(int(value)) if float(value).is_integer() else f"{value:,.2f}"


def _short(label: str, limit: int = 34) -> str:
    return label if display_width(label) <= limit else label[:limit - 1] + "…"


def _legend(block: Chart, y: float) -> str:
    items, x = [], 0.0
    for k, series in enumerate(block.series):
        items.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="11" height="11" fill="{PALETTE[k % len(PALETTE)]}"/>'
                     f'<text x="{x + 15:.0f}" y="{y + 10:.0f}">{escape(series.name)}</text>')
        x += 30 + 7 * len(series.name)
    return "".join(items)


def bars_svg(block: Chart) -> str:
    """Horizontal bars, one row per label: one bar, side-by-side bars per series (grouped), or the series
    stacked; the value at the end of each."""
    stacked = block.kind == "stacked"
    lanes = 1 if stacked else len(block.series)
    label_width = min(250, 10 + 7 * max((display_width(_short(x)) for x in block.labels), default=1))
    plot = WIDTH - label_width - 170
    lane, gap = (18 if lanes == 1 else 13), 8
    legend = stacked or lanes > 1
    top_y = 22 if legend else 4
    totals = [sum(s.values[k] for s in block.series) for k in range(len(block.labels))] if stacked else \
        [max((s.values[k] for s in block.series), default=0) for k in range(len(block.labels))]
    top = max(totals, default=0) or 1
    parts = [_legend(block, 4) if legend else ""]
    for k, label in enumerate(block.labels):
        y = top_y + k * (lanes * lane + gap)
        parts.append(f'<text x="0" y="{y + lanes * lane / 2 + 4:.1f}"><title>{escape(label)}</title>'
                     f"{escape(_short(label))}</text>")
        x = float(label_width)
        for i, series in enumerate(block.series):
            value = series.values[k]
            length = plot * value / top
            row_y = y if stacked else y + i * lane
            parts.append(f'<rect x="{x:.1f}" y="{row_y:.1f}" width="{length:.1f}" height="{lane - 2}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(series.name)}: {_number(value)}'
                         '</title></rect>')
            if stacked:
                x += length
            else:
                parts.append(f'<text x="{x + length + 5:.1f}" y="{row_y + lane - 5:.1f}">{_number(value)}</text>')
        if stacked:
            parts.append(f'<text x="{x + 5:.1f}" y="{y + lane - 5:.1f}">{_number(totals[k])}</text>')
    height = top_y + len(block.labels) * (lanes * lane + gap) + 4
    return _open(height, block.title) + "".join(parts) + "</svg>"


def histogram_svg(block: Chart) -> str:
    """Vertical bars over ordered bins, the count above each, the bin under it."""
    values = block.series[0].values if block.series else ()
    n = max(len(values), 1)
    plot_height, top_y, left = 150, 16, 4
    slot = (WIDTH - left) / n
    top = max(values, default=0) or 1
    parts = []
    for k, (label, value) in enumerate(zip(block.labels, values, strict=True)):
        height = plot_height * value / top
        x = left + k * slot
        parts.append(f'<rect x="{x + 3:.1f}" y="{top_y + plot_height - height:.1f}" width="{slot - 6:.1f}" '
                     f'height="{height:.1f}" fill="{PALETTE[0]}"><title>{escape(label)}: {_number(value)}'
                     '</title></rect>'
                     f'<text x="{x + slot / 2:.1f}" y="{top_y + plot_height - height - 3:.1f}" text-anchor="middle">'
                     f"{_number(value)}</text>"
                     f'<text x="{x + slot / 2:.1f}" y="{top_y + plot_height + 15:.1f}" text-anchor="middle">'
                     f"{escape(label)}</text>")
    axis = (f'<line x1="{left}" y1="{top_y + plot_height}" x2="{WIDTH}" y2="{top_y + plot_height}" '
            f'stroke="#999"/>')
    return _open(top_y + plot_height + 24, block.title) + axis + "".join(parts) + "</svg>"
