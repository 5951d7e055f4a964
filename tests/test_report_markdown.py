"""report.md: a snapshot of a small build with every section, and the demo build's file matching its report."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline import build, report_markdown
from pipeline.config import load_mix
from tests.conftest import write_jsonl

SNAPSHOT = Path(__file__).parent / "snapshots" / "report_small.md"


def test_markdown_report_snapshot(tmp_path, write_mix):
    """Set UPDATE_SNAPSHOTS=1 to rewrite the snapshot after an intended change, and review the diff."""
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
                     "split": {"eval": 0.1}, "mixture": {"size": 40, "general_share": 0.5, "max_repeats": 2}})
    text = report_markdown.render(build.run(load_mix(mix)).report)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    for section in ("## Sources", "## Funnel", "## Quality rules", "## Personal data", "## Deduplication",
                    "## Train/eval split", "## Mixture", "## Ledger"):
        assert section in text


def test_html_report_is_self_contained_and_has_every_table(tmp_path, write_mix):
    from html.parser import HTMLParser

    from pipeline import report_html

    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Question {k} about topic {k * 13}?", "input": "",
                                        "output": f"Answer {k}."} for k in range(10)])
    report = build.run(load_mix(write_mix({"name": "h", "sources": [{"name": "a", "path": "a.jsonl"}]}))).report
    html = report_html.render(report)

    class Counter(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: dict[str, int] = {}
            self.external: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags[tag] = self.tags.get(tag, 0) + 1
            self.external += [v for k, v in attrs if k in ("src", "href") and v]

    parsed = Counter()
    parsed.feed(html)
    markdown_tables = sum(1 for line in report_markdown.render(report).splitlines() if line.startswith("|---")
                          or line.startswith("|---:"))
    assert parsed.tags["table"] == markdown_tables and parsed.tags["svg"] == 1
    assert parsed.external == []  # nothing to fetch when the page is opened
