"""report.md and report.html from the one section model: a snapshot of a small build's Markdown with every
section, and both renderers drawing exactly the tables and charts the model holds."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline import audit, build
from pipeline.config import load_mix
from pipeline.report import html, markdown
from pipeline.report.document import Bullets, Chart, Document, Section, Series, Share, Table, Text, table
from pipeline.report.sections import document
from tests.conftest import write_jsonl

SNAPSHOT = Path(__file__).parent / "snapshots" / "report_small.md"


def small_build(tmp_path: Path, write_mix) -> build.BuildResult:  # type: ignore[no-untyped-def]
    write_jsonl(tmp_path / "task.jsonl", [{"instruction": f"Task question number {k} about item {k * 7}?",
                                           "input": "", "output": f"Answer {k} is {k * 3}."} for k in range(20)]
                + [{"instruction": "Task question number 1 about item 7?", "input": "", "output": "Answer 1 is 3."},
                   {"instruction": "Reply.", "input": "", "output": "As an AI language model, I cannot reply."}])
    write_jsonl(tmp_path / "gen.jsonl", [{"instruction": f"General question {k} on topic {k * 11}.", "input": "",
                                          "output": f"General answer {k}, write to a{k}@example.com."}
                                         for k in range(30)])
    mix = write_mix({"name": "small", "seed": 1,
                     "sources": [{"name": "task", "path": "task.jsonl"},
                                 {"name": "gen", "path": "gen.jsonl", "general": True}],
                     "split": {"eval": 0.1}, "mixture": {"size": 40, "general_share": 0.5, "max_repeats": 2},
                     "train": {"base_model": "NousResearch/Llama-2-13b-hf", "micro_batch_size": 2}})
    return build.run(load_mix(mix))


def test_markdown_report_snapshot(tmp_path, write_mix):
    """Set UPDATE_SNAPSHOTS=1 to rewrite the snapshot after an intended change, and review the diff."""
    text = markdown.render(small_build(tmp_path, write_mix).report)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    for section in ("## Advice", "## Funnel", "## Sources", "## Funnel by source", "## Quality rules",
                    "## Personal data", "## Deduplication", "## Train/eval split", "## Mixture",
                    "## Train split: languages", "## Train split: lengths", "## Train split: instruction diversity",
                    "## Train split: composition", "## Memory estimate", "## Ledger"):
        assert f"\n{section}\n" in text
    # the memory estimate reads train: (13B from the model's name, micro batch 2) and tokenize.cutoff_len
    assert "a 13B model (train.base_model 'NousResearch/Llama-2-13b-hf': the size in its name)" in text
    assert "rows of 1,024 tokens" in text and "micro batch 2" in text


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def test_both_renderers_draw_every_table_and_chart_of_the_model(tmp_path, write_mix):
    report = small_build(tmp_path, write_mix).report
    doc = document(report)
    tables, charts = len(doc.blocks(Table)), len(doc.blocks(Chart))
    assert tables >= 12 and charts >= 7  # funnel, per source, mixture, languages, 2 length histograms, words, memory
    parsed = Tags()
    parsed.feed(html.render(report))
    assert parsed.tags["table"] == tables and parsed.tags["svg"] == charts
    assert parsed.tags["section"] == len(doc.sections)
    assert all(link.startswith("#") for link in parsed.links)  # nothing fetched when the page is opened
    assert "<script" not in html.render(report)
    lines = markdown.render(report).splitlines()
    assert sum(line.startswith("|---") for line in lines) == tables
    assert lines.count("```text") == charts


def test_columns_are_typed_from_their_cells():
    made = table(["name", "count", "share", "flag"], [("a", 1, Share(0.5), True), ("b", None, Share(0.25), False)])
    assert [c.numeric for c in made.columns] == [False, True, True, False]
    assert markdown.table(made)[1] == "|---|---:|---:|---|"
    assert markdown.table(made)[2] == "| a | 1 | 50.0% | yes |"


@pytest.mark.parametrize("kind", ["bar", "histogram", "stacked"])
def test_text_bars_scale_to_the_largest_value(kind):
    series = (Series("kept", (10.0, 40.0, 0.0)),) if kind != "stacked" else (
        Series("kept", (10.0, 30.0, 0.0)), Series("removed", (0.0, 10.0, 0.0)))
    lines = markdown.chart(Chart(kind, "t", ("a", "bb", "c"), series))  # type: ignore[arg-type]
    body = [line for line in lines if line.startswith(("a ", "bb", "c "))]
    widest = body[1].split("  ")[1]
    assert widest.startswith("█" * markdown.BAR_WIDTH if kind != "stacked" else "█" * 30 + "▓" * 10)
    assert body[0].count("█") == markdown.BAR_WIDTH // 4
    assert body[2].endswith(" 0" if kind != "stacked" else "(none)")


SCRIPT, IMG = "<script>alert(1)</script>", "<img src=x onerror=alert(1)>"


def _no_raw_html(text: str) -> None:
    """No tag from the data in the Markdown, and none in the HTML a Markdown viewer makes of it."""
    lowered = text.lower()
    assert "<script" not in lowered and "<img" not in lowered
    markdown_lib = pytest.importorskip("markdown")
    parsed = Tags()
    parsed.feed(markdown_lib.markdown(text, extensions=["tables", "fenced_code"]))
    assert "script" not in parsed.tags and "img" not in parsed.tags and "table" in parsed.tags


def test_audit_markdown_escapes_html_from_the_data(tmp_path):
    """Instructions (shown as duplicate previews and in the verdicts) and a file name that are HTML."""
    rows = [{"instruction": text, "input": "", "output": f"Answer {k}: it shows a dialog."}
            for k, text in enumerate([SCRIPT, SCRIPT, IMG, IMG, f"{IMG} & more", "Say <b>hi</b> & [x](js:y)"])]
    write_jsonl(tmp_path / "data" / f"{IMG}.jsonl", rows)
    report = audit.run([str(tmp_path / "data")], root=tmp_path)
    text = markdown.render(report)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    _no_raw_html(text)


def test_every_markdown_block_escapes_html():
    doc = Document(
        title=f"Build report: {IMG}", lead=f"lead {SCRIPT}", byline="`a <= b`, 3 < 4 & 5 > 2",
        sections=(Section(f"Section {IMG}", (
            Text(f"text {SCRIPT}"), Bullets((f"bullet {IMG}",)),
            table(["name", "why"], [(SCRIPT, f"a | b\nc & {IMG} [x](javascript:alert(1))")]),
            Chart("bar", f"chart {SCRIPT}", (IMG,), (Series("records", (1.0,)),)),
        )),))
    text = markdown.render_document(doc)
    _no_raw_html(text.replace(f"```text\n{IMG}", "```text\n"))  # a fenced block shows it as code
    assert "| &lt;script&gt;alert(1)&lt;/script&gt; | a \\| b c &amp; &lt;img src=x onerror=alert(1)&gt; " \
           "\\[x](javascript:alert(1)) |" in text
    assert "`a <= b`, 3 < 4 & 5 > 2" in text  # comparisons in prose stay readable: no tag can start there
