"""report.html and audit.html in a real browser: Debian's chromium, headless, driven by playwright. Each page must
render with no console error and no page error, show every chart and table of its section model, and leave a
full-page screenshot under tests/artifacts/ (its path is printed: CI keeps it as an artifact)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import audit, build, writer
from pipeline.config import load_mix
from pipeline.report.document import Chart, Document, Table
from pipeline.report.sections import document
from schemas.report import BuildReport
from tests.conftest import ROOT, write_json, write_jsonl

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it in CI)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def check_in_browser(browser, html: Path, doc: Document, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Open the page offline, assert it renders cleanly and completely, and save a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})  # a laptop screen
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert requests == [html.as_uri()]  # self-contained: nothing else is fetched
    charts, tables = doc.blocks(Chart), doc.blocks(Table)
    svgs = page.locator("figure svg")
    assert svgs.count() == len(charts) and page.locator("table").count() == len(tables)
    for k, chart in enumerate(charts):
        box = svgs.nth(k).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 20, chart.title
        assert svgs.nth(k).get_attribute("aria-label") == chart.title
        assert svgs.nth(k).locator("rect").count() >= sum(1 for s in chart.series for v in s.values)
    assert [h.inner_text() for h in page.locator("h2").all()] == [s.title for s in doc.sections]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # no sideways scrolling of the page
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    print(f"screenshot: {shot}")
    return shot


def test_build_report_renders_in_chromium(browser, tmp_path, write_mix, llama_tokenizer):
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=shutil.ignore_patterns("*.py", "*.md"))
    mix = load_mix(tmp_path / "data" / "mix.yaml")
    out = writer.write(build.run(mix, tokenizer=llama_tokenizer))
    report = BuildReport.model_validate_json((out / "report.json").read_text())
    doc = document(report)
    assert {"Funnel", "Train split: lengths", "Memory estimate"} <= {s.title for s in doc.sections}
    assert report.profile is not None and report.profile.lengths.tokens is not None  # the token histogram too
    assert check_in_browser(browser, out / "report.html", doc, "build-report").stat().st_size > 10_000


def small_dataset(folder: Path) -> list[str]:
    """Two files with the defects an audit must find: a trailing comma, a placeholder input, an empty output, a
    record without an input key, a duplicate across the files, HTML, an e-mail address, Chinese text."""
    rows = [{"instruction": f"Is {k} an even number?", "input": "",
             "output": f"{'Yes' if k % 2 == 0 else 'No'}, the number {k} is {'even' if k % 2 == 0 else 'odd'}; its "
                       f"square is {k * k}, which is {'even' if k % 2 == 0 else 'odd'} as well."}
            for k in range(1, 30)]
    rows += [{"instruction": "Summarize the text.", "input": "<noinput>", "output": "Nothing to summarize."},
             {"instruction": "Say nothing.", "input": "", "output": ""},
             {"instruction": "Format this as HTML.", "output": "<p>Hello <b>world</b></p>"},
             {"instruction": "Who do I write to?", "input": "", "output": "Write to someone@example.com."}]
    write_json(folder / "a.json", rows)
    text = (folder / "a.json").read_text()
    (folder / "a.json").write_text(text[:text.rstrip().rfind("]")].rstrip() + ",\n]\n")
    write_jsonl(folder / "b.jsonl",
                rows[:3] + [{"instruction": "把这句话翻译成英文。", "input": "你好", "output": "Hello."}])
    return [str(folder)]


def test_audit_report_renders_in_chromium(browser, tmp_path, llama_tokenizer):
    paths = small_dataset(tmp_path / "data")
    report = audit.run(paths, llama_tokenizer, root=tmp_path)
    written = audit.write(report, tmp_path / "audit")
    doc = document(report)
    assert [p.name for p in written] == ["audit.html", "audit.md", "audit.json"]
    assert {"Verdicts", "Files", "Duplicate records", "Lengths"} <= {s.title for s in doc.sections}
    check_in_browser(browser, tmp_path / "audit" / "audit.html", doc, "audit-report")
