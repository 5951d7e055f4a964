"""report.html: a build's report as one self-contained page (inline CSS and SVG; nothing fetched at view time).

Contract: ``render(report)`` is a pure function of the ``BuildReport``: a summary on top (totals, advice, the
funnel as a bar chart), then the tables ``report.md`` has (the same section builders, as HTML).
"""

from __future__ import annotations

from html import escape

from pipeline import report_markdown
from schemas.report import BuildReport

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.summary{background:#f7f9fc;
padding:10px 14px;border-radius:6px}svg text{font:12px system-ui,sans-serif}
"""


def funnel_svg(report: BuildReport, width: int = 720) -> str:
    """One bar per stage: records kept (blue) and removed (red), all sources."""
    rows = [f for f in report.funnel if f.source is None]
    top = max((f.input for f in rows), default=1) or 1
    bar, gap, label = 18, 6, 110
    height = len(rows) * (bar + gap) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="stage funnel">']
    for k, f in enumerate(rows):
        y = 5 + k * (bar + gap)
        kept = (width - label - 120) * f.kept / top
        removed = (width - label - 120) * f.rejected / top
        parts += [f'<text x="0" y="{y + 13}">{escape(f.stage)}</text>',
                  f'<rect x="{label}" y="{y}" width="{kept:.1f}" height="{bar}" fill="#4c78a8"/>',
                  f'<rect x="{label + kept:.1f}" y="{y}" width="{max(removed, 0):.1f}" height="{bar}" fill="#e45756"/>',
                  f'<text x="{label + kept + removed + 6:.1f}" y="{y + 13}">{f.kept:,} kept, {f.rejected:,} removed</text>']
    return "".join(parts) + "</svg>"


def _markdown_table_to_html(lines: list[str]) -> str:
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    numeric = [a == "---:" for a in lines[1].strip("|").split("|")]
    body = []
    for line in lines[2:]:
        cells = [c.strip().replace("\\|", "|") for c in line.strip()[2:-2].split(" | ")]
        body.append("<tr>" + "".join(f'<td class="n">{escape(c)}</td>' if numeric[i] else f"<td>{escape(c)}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>" + "".join(body)
            + "</table>")


def render(report: BuildReport) -> str:
    """The Markdown report's sections as HTML, with the funnel drawn under the summary."""
    lines = report_markdown.render(report).splitlines()
    html, k = [], 0
    while k < len(lines):
        line = lines[k]
        if line.startswith("|"):
            block = []
            while k < len(lines) and lines[k].startswith("|"):
                block.append(lines[k])
                k += 1
            html.append(_markdown_table_to_html(block))
            continue
        if line.startswith("# "):
            html.append(f"<h1>{escape(line[2:])}</h1>")
        elif line.startswith("## "):
            html.append(f"<h2>{escape(line[3:])}</h2>")
            if line == "## Funnel":
                html.append(funnel_svg(report))
        elif line.startswith("- "):
            html.append(f"<ul><li>{escape(line[2:])}</li></ul>")
        elif line.startswith("**"):
            html.append(f'<p class="summary">{escape(line.replace("**", ""))}</p>')
        elif line:
            html.append(f"<p>{escape(line).replace('`', '')}</p>")
        k += 1
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>Build report: {escape(report.name)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(html)}</body></html>\n")
