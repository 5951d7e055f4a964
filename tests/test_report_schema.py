"""report.json has a JSON Schema (schemas/report.schema.json, generated from schemas/report.py) and validates."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from pipeline import build
from pipeline.config import load_mix
from schemas.report import BuildReport, json_schema
from tests.conftest import write_jsonl

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "report.schema.json"


def test_committed_schema_is_current():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "regenerate: python -m schemas.report > schemas/report.schema.json")


def test_a_build_report_validates(tmp_path, write_mix):
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"Q{k}?", "input": "", "output": f"A{k}."} for k in range(5)])
    report = build.run(load_mix(write_mix({"name": "s", "sources": [{"name": "a", "path": "a.jsonl"}]}))).report
    jsonschema.validate(report.model_dump(mode="json"), json.loads(SCHEMA.read_text()))
    assert BuildReport.model_validate_json(report.model_dump_json()) == report
