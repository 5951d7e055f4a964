"""audit.json: what `pipeline audit` found in a dataset, without building. ``version`` changes when the shape does.

Counts are of items read (``items``) or of readable records (``records``: the items that pass ingest and the
type and content checks a build applies); nothing is removed, every finding is counted with example ids.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.report import DatasetProfile, Model, RuleCount

AUDIT_VERSION = 1


class AuditFile(Model):
    """One file (or dataset) read: what it holds and what is wrong with it."""

    file: str = Field(description="path as given, relative to the working folder")
    dataset: str = Field(description="the PATH argument it was found under")
    source: str = Field(description="the name in its record ids (<source>#<n>)")
    format: str
    items: int
    records: int = Field(description="readable records")
    rejected: dict[str, int] = Field(default_factory=dict, description="items a build would reject, by reason")
    repairs: dict[str, int] = Field(default_factory=dict, description="fixes a build would apply, by kind")
    problem: str | None = Field(None, description="a problem of the file itself (e.g. not strict JSON)")
    languages: dict[str, int] = Field(default_factory=dict)
    duplicates: int = Field(0, description="records duplicating an earlier one (exact or near)")


class FieldStats(Model):
    """Empty, placeholder and missing values of one canonical field."""

    field: str
    present: int = Field(description="readable records with a non-empty value")
    empty: RuleCount
    placeholder: RuleCount | None = Field(None, description="'<noinput>', 'N/A', '{{name}}', '<nooutput>'...")
    missing_key: int = Field(0, description="rows without the key")


class ClusterExample(Model):
    kind: str
    kept_id: str
    members: list[str] = Field(description="up to five duplicate ids")
    size: int = Field(description="records in the cluster, the kept one included")
    similarity: float = Field(description="the lowest similarity of a member with the kept record")
    preview: str = Field(description="the start of the kept record's instruction (PII masked)")


class FilePair(Model):
    file: str = Field(description="the source of the duplicates")
    kept_file: str = Field(description="the source of the records they duplicate")
    kind: str
    count: int


class DuplicateView(Model):
    """Duplicates by one key: a build's record key, or the instruction alone."""

    key: str
    ngram: int
    threshold: float
    exact: int
    near: int
    rate: float = Field(description="(exact + near) / readable records")
    cross_file: int = Field(description="duplicates whose kept record is in another file")
    clusters: int
    largest_cluster: int
    pairs: list[FilePair] = Field(default_factory=list, description="the file pairs sharing the most duplicates")
    examples: list[ClusterExample] = Field(default_factory=list)


class Verdict(Model):
    """One problem, ranked by severity, then count."""

    code: str
    severity: str = Field(description="high, medium, low or info")
    count: int
    share: float = Field(description="count / items")
    message: str
    examples: list[str] = Field(default_factory=list, description="record ids (or files)")


class AuditReport(Model):
    version: int = AUDIT_VERSION
    paths: list[str]
    tokenizer: str | None = Field(None, description="the tokenizer the token lengths come from")
    totals: dict[str, int]
    verdicts: list[Verdict]
    files: list[AuditFile]
    schema_problems: dict[str, RuleCount] = Field(
        default_factory=dict, description="items a build would reject at ingest or validate, by reason")
    repairs: dict[str, int] = Field(default_factory=dict)
    fields: list[FieldStats]
    duplicates: DuplicateView
    instruction_duplicates: DuplicateView
    quality: dict[str, RuleCount] = Field(default_factory=dict, description="records breaking each rule")
    pii: dict[str, RuleCount] = Field(default_factory=dict, description="records holding each type (not the PII)")
    content: dict[str, RuleCount] = Field(default_factory=dict, description="HTML, examples over the cutoff...")
    profile: DatasetProfile


def json_schema() -> dict[str, Any]:
    """audit.json's JSON Schema (committed as schemas/audit.schema.json; a test keeps the two equal)."""
    return AuditReport.model_json_schema(mode="serialization")


if __name__ == "__main__":
    import json

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
