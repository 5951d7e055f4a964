"""`pipeline audit`, measuring: the counters over the readable records that a report holds.

Contract: pure functions over polars frames, nothing removed and no file touched. ``rule_count``/``hits`` count
the ids a mask selects (with up to ``EXAMPLES`` example ids); ``quality_hits``, ``pii_hits`` and
``content_hits`` count records per rule a build applies by default (``QUALITY_RULES``), per personal-data type
and per content check (HTML; over ``CUTOFF`` tokens when token lengths are given); ``token_lengths`` measures
each record as an uncut Alpaca-template training example; ``duplicate_view`` reports the duplicates a dedup
setting finds; ``input_values`` and ``field_stats`` count empty, placeholder and missing fields. ``Measured`` is
what the measurements hand to the verdicts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import polars as pl

from pipeline import dedup, pii, quality, tokenize
from schemas.audit import AuditReport, ClusterExample, DuplicateView, FieldStats, FilePair
from schemas.mix import DedupSpec, FiltersSpec, PiiSpec, QualitySpec, TokenizeSpec
from schemas.report import RuleCount

EXAMPLES = 3
RECORD_DEDUP = DedupSpec()  # what a build removes by default
INSTRUCTION_DEDUP = DedupSpec(key="prompt", ngram=1, threshold=0.8)  # the same words, reordered or one changed
CLUSTER_EXAMPLES = 3  # per kind (exact, near)
FILE_PAIRS = 10
PREVIEW_CHARS = 72
TOKEN_BATCH = 50_000  # records tokenized at a time: only their lengths are kept
UNCUT = 1 << 30
CUTOFF = TokenizeSpec().cutoff_len
HTML_TAG = (r"(?i)</?(?:a|b|i|u|p|br|hr|h[1-6]|div|span|ul|ol|li|table|tr|td|th|img|script|style|html|body|head|"
            r"title|meta|link|form|input|button|strong|em|code|pre|iframe)(?:\s[^<>]{0,200})?/?>")
CONTENT_CHECKS: tuple[tuple[str, str], ...] = (("html", HTML_TAG),)  # (name, pattern over instruction/input/output)
DEFAULT_QUALITY = QualitySpec()
QUALITY_RULES = tuple(rule for rule in quality.RULES  # the rules a build applies by default
                      if getattr(DEFAULT_QUALITY, rule.setting) not in (None, False))


@dataclass
class Measured:
    """An audit before its verdicts: the report so far and the frames the verdicts also read."""

    report: AuditReport
    records: pl.DataFrame  # readable records, as a build's normalize leaves them, with lang
    record_dups: pl.DataFrame  # every duplicate by the record key (dedup.DUPLICATE_SCHEMA)
    instruction_dups: pl.DataFrame  # every duplicate by the instruction alone
    rejected: pl.DataFrame  # every unreadable item (QUARANTINE_SCHEMA)


def rule_count(ids: pl.Series) -> RuleCount:
    return RuleCount(count=ids.len(), examples=ids.head(EXAMPLES).to_list())


def hits(records: pl.DataFrame, mask: pl.Series | pl.Expr) -> RuleCount:
    selected = mask if isinstance(mask, pl.Series) else records.select(mask).to_series()
    return rule_count(records["id"].filter(selected.fill_null(False)))


def quality_hits(records: pl.DataFrame) -> dict[str, RuleCount]:
    """Records breaking each rule of ``QUALITY_RULES`` (every rule a record breaks, not only the first)."""
    return {rule.reason: hits(records, rule.check(records, getattr(DEFAULT_QUALITY, rule.setting)))
            if records.height else rule_count(records["id"]) for rule in QUALITY_RULES}


def pii_hits(records: pl.DataFrame) -> dict[str, RuleCount]:
    """Records holding each type of personal data (validated as a build validates it), never the data itself."""
    found = {}
    for detector in pii.DETECTORS:
        holding = pii.find_pii(records, PiiSpec(action="quarantine", types=[detector.type])).rejected
        found[detector.type] = rule_count(holding["id"])
    return found


def content_hits(records: pl.DataFrame, tokens: pl.Series | None) -> dict[str, RuleCount]:
    found = {name: hits(records, pl.any_horizontal(pl.col(f).str.contains(pattern)
                                                    for f in ("instruction", "input", "output")))
             for name, pattern in CONTENT_CHECKS}
    if tokens is not None:
        found[f"over_{CUTOFF}_tokens"] = hits(records, tokens > CUTOFF)
    return found


def token_lengths(records: pl.DataFrame, tokenizer: Any) -> pl.Series:
    """Each record's length as a training example under the Alpaca template (BOS, prompt, answer, EOS), uncut."""
    settings = TokenizeSpec(cutoff_len=UNCUT, overflow="truncate")
    parts = [pl.Series("n_tokens", [], dtype=pl.Int64)]
    for start in range(0, records.height, TOKEN_BATCH):
        batch = records.slice(start, TOKEN_BATCH)
        examples = tokenize.tokenize(batch, tokenizer, settings, FiltersSpec()).examples
        parts.append(batch.select("id").join(examples.select("id", "n_tokens"), on="id", how="left",
                                             maintain_order="left")["n_tokens"].cast(pl.Int64))
    return pl.concat(parts)


def preview(text: str) -> str:
    """The start of a text on one line, its personal data masked."""
    line = " ".join(text.split())
    line = line if len(line) <= PREVIEW_CHARS else line[:PREVIEW_CHARS - 1] + "…"
    return pii.scan(line, pii.DETECTORS)[0]


def duplicate_view(records: pl.DataFrame, settings: DedupSpec,
                   priority: list[str]) -> tuple[DuplicateView, pl.DataFrame]:
    """Duplicates by ``settings`` (nothing removed) and the rows of every duplicate."""
    result = dedup.deduplicate(records, settings, priority)
    found = result.duplicates
    clusters = found.group_by("kept_id").agg(
        pl.len().alias("n"), pl.col("id").head(5).alias("members"), pl.col("similarity").min(),
        (pl.col("kind") == "near").any().alias("near"), pl.col("kind").unique().sort().str.join("+").alias("kind"),
    ).sort(["n", "kept_id"], descending=[True, False])
    shown = pl.concat([clusters.filter(~pl.col("near")).head(CLUSTER_EXAMPLES),
                       clusters.filter(pl.col("near")).head(CLUSTER_EXAMPLES)])
    instructions = dict(records.join(shown.select(pl.col("kept_id").alias("id")), on="id", how="semi")
                        .select("id", "instruction").iter_rows())
    pairs = found.filter(pl.col("source") != pl.col("kept_source")).group_by("source", "kept_source", "kind").len()
    exact = int((found["kind"] == "exact").sum())
    view = DuplicateView(
        key="instruction" if settings.key == "prompt" else settings.key, ngram=settings.ngram,
        threshold=settings.threshold, exact=exact, near=found.height - exact,
        rate=round(found.height / max(records.height, 1), 4),
        cross_file=int((found["source"] != found["kept_source"]).sum()),
        clusters=clusters.height, largest_cluster=cast(int, clusters["n"].max() or 0) + 1 if clusters.height else 0,
        pairs=[FilePair(file=s, kept_file=k, kind=kind, count=n) for s, k, kind, n in
               pairs.sort(["len", "source", "kept_source"], descending=[True, False, False])
               .head(FILE_PAIRS).iter_rows()],
        examples=[ClusterExample(kind=row["kind"], kept_id=row["kept_id"], members=row["members"], size=row["n"] + 1,
                                 similarity=round(row["similarity"], 3), preview=preview(instructions[row["kept_id"]]))
                  for row in shown.iter_rows(named=True)],
    )
    return view, found


def input_values(records: pl.DataFrame, rejected: pl.DataFrame) -> pl.DataFrame:
    """id, source and input of every item with an input: the readable records (placeholders still in place),
    then the rejected rows whose original has one (trimmed, as normalize would)."""
    kept = records.select("id", "source", "input")
    raw = rejected.select("id", "source", pl.col("original").str.json_path_match("$.input").str.strip_chars()
                          .alias("input")).drop_nulls("input")
    return pl.concat([kept, raw])


def field_stats(records: pl.DataFrame, rejected: pl.DataFrame, inputs: pl.DataFrame,
                repairs: Counter[str]) -> list[FieldStats]:
    """Empty, placeholder and missing values of each canonical text field; inputs are counted over every item
    that has one (``input_values``: with ``placeholder`` and ``empty`` flags), the other fields over the readable
    records and the rejects that name them."""
    def rejects(reason: str) -> pl.Series:
        return rejected.filter(pl.col("reason") == reason)["id"]

    def present(column: str) -> int:
        return int((records[column].fill_null("").str.len_bytes() > 0).sum())

    slot = quality.PLACEHOLDERS
    return [
        FieldStats(field="instruction", present=present("instruction"), empty=rule_count(rejects("empty_instruction")),
                   placeholder=hits(records, pl.col("instruction").str.contains(slot)),
                   missing_key=rejects("missing_field:instruction").len()),
        FieldStats(field="input", present=present("input"), empty=hits(inputs, pl.col("empty")),
                   placeholder=hits(inputs, pl.col("placeholder")),
                   missing_key=repairs["missing_input"] + rejects("missing_field:input").len()),
        FieldStats(field="output", present=present("output"), empty=rule_count(rejects("empty_output")),
                   placeholder=hits(records, pl.col("output").str.contains(slot)),
                   missing_key=rejects("missing_field:output").len()),
        FieldStats(field="system", present=present("system"), empty=hits(records, pl.col("system") == "")),
    ]

