"""`pipeline audit`, verdicts: the facts found in a measured audit and the table of rules that ranks them.

Contract: ``findings(measured)`` turns a ``Measured`` audit into one ``Finding`` (count, example ids, detail)
per verdict code; ``verdicts(found, items)`` applies ``VERDICT_RULES``: each rule whose finding counts
something gives a ``Verdict`` whose severity is the first level whose share of the items it reaches, worst
first (``SEVERITIES``), then by count, then by code. Pure: nothing is read or written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from pipeline.audit.measures import CUTOFF, EXAMPLES, QUALITY_RULES, Measured, preview
from pipeline.formats import AMBIGUOUS_HINT, parse_alias_repair
from schemas.audit import DuplicateView, Verdict
from schemas.report import RuleCount

LANGUAGE_MISMATCH_SHARE = 0.10  # a file with more records outside its dataset's language is flagged
LOW_DIVERSITY_SHARE = 0.5  # ten leading words starting more instructions than this
SEVERITIES = ("high", "medium", "low", "info")
SCHEMA_PARSE = ("malformed_json", "not_an_object")
SCHEMA_EMPTY = ("empty_output", "empty_instruction")
AMBIGUOUS = "ambiguous_field:"  # rejects of a file whose keys left a field ambiguous (pipeline.formats)
MISSING = "missing_field:"


@dataclass(frozen=True)
class Finding:
    count: int
    examples: list[str]
    detail: str = ""


def off_language(records: pl.DataFrame) -> Finding:
    """Records outside their dataset's main language, in the files where they are more than
    ``LANGUAGE_MISMATCH_SHARE`` of the records. Records without letters (``und``) never count."""
    lettered = records.filter(pl.col("lang") != "und")
    main = {task: group.sort(["len", "lang"], descending=[True, False])["lang"][0]
            for (task,), group in lettered.group_by("task", "lang").len().group_by("task")}
    off_language = pl.col("lang") != pl.col("task").replace_strict(main, default=None)
    flagged = lettered.with_columns(off=off_language).with_columns(share=pl.col("off").mean().over("source"))
    off = flagged.filter(pl.col("off") & (pl.col("share") > LANGUAGE_MISMATCH_SHARE))
    per_file = off.group_by("source", "task", maintain_order=True).agg(pl.len(), pl.col("share").first(),
                                                                       pl.col("lang").mode().first())
    detail = "; ".join(f"{s}: {share:.0%} not {main[t]} (mostly {lang}, {n:,})" for s, t, n, share, lang in
                       per_file.sort("len", descending=True).iter_rows())
    return Finding(off.height, off["id"].head(EXAMPLES).to_list(), detail)


def _reasons(found: dict[str, RuleCount]) -> str:
    return ", ".join(f"{k} {v.count:,}" for k, v in sorted(found.items(), key=lambda kv: (-kv[1].count, kv[0]))
                     if v.count)


def _pairs(view: DuplicateView) -> str:
    return "; ".join(f"{p.file} vs {p.kept_file} ({p.kind}) {p.count:,}" for p in view.pairs[:3])


@dataclass(frozen=True)
class VerdictRule:
    """A problem worth a verdict: its finding (by code), how bad it is at which share of the items (the first
    level whose share it reaches), and what to tell the user."""

    code: str
    levels: tuple[tuple[float, str], ...]
    message: str  # formatted with count and detail


ALWAYS_HIGH = ((0.0, "high"),)
BY_SHARE = ((0.05, "high"), (0.01, "medium"), (0.0, "low"))
VERDICT_RULES: tuple[VerdictRule, ...] = (
    VerdictRule("not_strict_json", ALWAYS_HIGH, "{count:,} file(s) are not strict JSON: {detail}. A build stops on "
                "them unless the source sets lenient: true"),
    VerdictRule("malformed_items", ALWAYS_HIGH, "{count:,} item(s) do not parse ({detail}); a lenient build "
                "quarantines them"),
    VerdictRule("ambiguous_keys", ALWAYS_HIGH, "{count:,} record(s) are unread, their file having more than one key "
                "for a field ({detail}); name the key to read with --columns FIELD=KEY"),
    VerdictRule("invalid_records", ALWAYS_HIGH, "{count:,} record(s) fail the record schema ({detail})"),
    VerdictRule("empty_output", ALWAYS_HIGH, "{count:,} record(s) have an empty output; a build rejects them"),
    VerdictRule("empty_instruction", ALWAYS_HIGH, "{count:,} record(s) have an empty instruction"),
    VerdictRule("language_mismatch", ((0.01, "high"), (0.0, "medium")),
                "{count:,} record(s) are not in their dataset's language: {detail}"),
    VerdictRule("cross_file_duplicates", BY_SHARE, "{count:,} record(s) duplicate a record of another file "
                "(exact or Jaccard >= 0.8): {detail}"),
    VerdictRule("duplicates", BY_SHARE, "{count:,} record(s) duplicate a record of their own file: {detail}"),
    VerdictRule("pii", ((0.01, "high"), (0.0, "medium")), "{count:,} record(s) hold personal data ({detail}); a "
                "build redacts it by default"),
    *(VerdictRule(f"quality:{rule.reason}", ((0.01, "medium"), (0.0, "low")),
                  f"{{count:,}} record(s) break the quality rule {rule.reason}; a build quarantines them")
      for rule in QUALITY_RULES),
    VerdictRule("low_diversity", ((0.0, "medium"),), "{count:,} instruction(s) start with one of ten words "
                "({detail}): a narrow set of requests"),
    VerdictRule("over_cutoff", ((0.05, "medium"), (0.0, "low")), "{count:,} record(s) are longer than "
                f"{CUTOFF} LLaMA-2 tokens (the default tokenize.cutoff_len); a build drops them unless "
                "overflow: truncate"),
    VerdictRule("near_duplicate_instructions", ((0.05, "medium"), (0.0, "low")),
                "{count:,} instruction(s) of records that are not duplicates repeat another instruction's words "
                "(Jaccard >= 0.8 over word sets): {detail}"),
    VerdictRule("html", ((0.0, "low"),), "{count:,} record(s) contain HTML tags"),
    VerdictRule("placeholder_input", ((0.0, "low"),), "{count:,} input(s) are placeholders such as 'No input' or "
                "'<noinput>' ({detail}); a build empties them (placeholder_input)"),
    VerdictRule("missing_input_key", ((0.0, "low"),), "{count:,} record(s) have no input key ({detail}); a build "
                "gives them \"\" (missing_input) or, with validate.require_input_key, rejects them"),
    VerdictRule("empty_input", ((0.0, "info"),), "{count:,} record(s) have an empty input (instructions without "
                "context: normal for Alpaca data)"),
    VerdictRule("aliased_keys", ((0.0, "info"),), "{count:,} record(s) are read under key aliases ({detail}); a "
                "build with format: auto reads them so too. If a key means something else, name the right one "
                "with --columns FIELD=KEY"),
    VerdictRule("repairs", ((0.0, "info"),), "{count:,} repair(s) a build would make: {detail}"),
)
MISSING_FIELD_HINT = "; a field under another key is read with --columns FIELD=KEY"


def findings(measured: Measured) -> dict[str, Finding]:
    """The facts the verdict rules read, by code."""
    report, records = measured.report, measured.records
    record_dups, instruction_dups = measured.record_dups, measured.instruction_dups
    schema = report.schema_problems
    ambiguous = tuple(k for k in schema if k.startswith(AMBIGUOUS))
    invalid = {k: v for k, v in schema.items() if k not in SCHEMA_PARSE + SCHEMA_EMPTY + ambiguous}
    broken = [(f.source, f.problem) for f in report.files if f.problem]
    fields = {f.field: f for f in report.fields}
    cross = record_dups.filter(pl.col("source") != pl.col("kept_source"))
    within = record_dups.filter(pl.col("source") == pl.col("kept_source"))
    diversity = report.profile.diversity
    top = diversity.top_leading_words[:10]
    narrow = diversity.top10_share > LOW_DIVERSITY_SHARE
    missing_in = [f.source for f in report.files if f.repairs.get("missing_input")]
    similar = instruction_dups.join(record_dups, on="id", how="anti")  # a duplicated record is reported as such
    aliased = {(f.source, alias): n for f in report.files for fix, n in f.repairs.items()
               if (alias := parse_alias_repair(fix)) is not None}
    other_repairs = {k: v for k, v in report.repairs.items()
                     if k not in ("missing_input", "placeholder_input") and parse_alias_repair(k) is None}

    def of(*reasons: str) -> Finding:
        chosen = {r: schema[r] for r in reasons if r in schema}
        return Finding(sum(v.count for v in chosen.values()), [i for v in chosen.values() for i in v.examples],
                       _reasons(chosen))

    def duplicates(rows: pl.DataFrame) -> Finding:
        kinds = ", ".join(f"{k} {n:,}" for k, n in rows.group_by("kind").len().sort("kind").iter_rows())
        return Finding(rows.height, rows["id"].head(EXAMPLES).to_list(), kinds)

    found = {
        "not_strict_json": Finding(len(broken), [f for f, _ in broken], "; ".join(f"{f}: {p}" for f, p in broken)),
        "malformed_items": of(*SCHEMA_PARSE),
        "ambiguous_keys": _ambiguous(of(*ambiguous), measured.rejected),
        "invalid_records": _with_hint(of(*invalid)),
        "aliased_keys": Finding(sum(aliased.values()), [], "; ".join(
            f"{file}: {field} <- {key} {n:,}" for (file, (field, key)), n in aliased.items())),
        "empty_output": of("empty_output"),
        "empty_instruction": of("empty_instruction"),
        "language_mismatch": off_language(records),
        "cross_file_duplicates": Finding(cross.height, cross["id"].head(EXAMPLES).to_list(),
                                         duplicates(cross).detail
                                         + (f"; {_pairs(report.duplicates)}" if cross.height else "")),
        "duplicates": duplicates(within),
        "low_diversity": Finding(sum(g.records for g in top) if narrow else 0, [],
                                 ", ".join(f"{g.key} {g.share:.0%}" for g in top)),
        "over_cutoff": _finding(report.content.get(f"over_{CUTOFF}_tokens")),
        "near_duplicate_instructions": Finding(similar.height, similar["id"].head(EXAMPLES).to_list(),
                                               _similar_pairs(similar.head(2), records)),
        "html": _finding(report.content.get("html")),
        "placeholder_input": _finding(fields["input"].placeholder, "after folding case and punctuation"),
        "missing_input_key": Finding(report.repairs.get("missing_input", 0), missing_in, ", ".join(missing_in)),
        "empty_input": _finding(fields["input"].empty),
        "repairs": Finding(sum(other_repairs.values()), [], ", ".join(f"{k} {v:,}" for k, v in other_repairs.items())),
    }
    pii_found = {k: v for k, v in report.pii.items() if v.count}
    found["pii"] = Finding(sum(v.count for v in pii_found.values()),
                           [i for v in pii_found.values() for i in v.examples],
                           _reasons(pii_found))
    found.update({f"quality:{k}": _finding(v) for k, v in report.quality.items()})
    return found


def _similar_pairs(pairs: pl.DataFrame, records: pl.DataFrame) -> str:
    text = dict(records.join(pl.concat([pairs.select("id"), pairs.select(pl.col("kept_id").alias("id"))]), on="id",
                             how="semi").select("id", "instruction").iter_rows())
    return "e.g. " + "; ".join(f"'{preview(text[i])}' ~ '{preview(text[k])}'" for i, k in
                               pairs.select("id", "kept_id").iter_rows())


def _ambiguous(found: Finding, rejected: pl.DataFrame) -> Finding:
    """Ambiguous rejects, with the keys each file left ambiguous (the rejects' detail, one per file)."""
    if not found.count:
        return found
    keys = (rejected.filter(pl.col("reason").str.starts_with(AMBIGUOUS)).group_by("source", maintain_order=True)
            .agg(pl.col("detail").first(), pl.len()))
    hint = re.compile(re.escape(AMBIGUOUS_HINT) + r" \([^)]*\)")
    return Finding(found.count, found.examples, "; ".join(
        f"{source}: {hint.sub('', detail)} ({n:,})" for source, detail, n in keys.iter_rows()))


def _with_hint(found: Finding) -> Finding:
    """A finding of invalid records, with how to name a field's key when a field is missing."""
    return Finding(found.count, found.examples, found.detail + MISSING_FIELD_HINT) if MISSING in found.detail else found


def _finding(count: RuleCount | None, detail: str = "") -> Finding:
    return Finding(count.count, count.examples, detail) if count is not None else Finding(0, [])


def verdicts(found: dict[str, Finding], items: int) -> list[Verdict]:
    """The verdict of every rule whose finding counts something, worst first, then by count."""
    out = []
    for rule in VERDICT_RULES:
        finding = found.get(rule.code)
        if finding is None or not finding.count:
            continue
        share = finding.count / max(items, 1)
        severity = next(level for threshold, level in rule.levels if share >= threshold)
        out.append(Verdict(code=rule.code, severity=severity, count=finding.count, share=round(share, 4),
                           message=rule.message.format(count=finding.count, detail=finding.detail),
                           examples=finding.examples[:EXAMPLES]))
    return sorted(out, key=lambda v: (SEVERITIES.index(v.severity), -v.count, v.code))

