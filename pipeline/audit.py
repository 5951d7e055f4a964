"""`pipeline audit`: judge a dataset before spending GPU hours on it, without building anything.

Contract: ``run(paths, tokenizer, progress)`` reads files, globs and folders in any format the readers support,
leniently (a malformed item is counted, a broken file is reported, neither stops the audit), runs the checks a
build runs but removes nothing, and returns an ``AuditReport``: schema problems and repairs, empty and
placeholder fields, duplicates (a build's record key; and instructions alone), quality-rule, PII and content
hits, the dataset profile (languages, lengths in characters and LLaMA-2 tokens, diversity, composition), and
verdicts ranked by a table of rules. Each file is a source of its own (its name is the first part of its record
ids), so every count is also per file and duplicates across files are found like duplicates across sources.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from pipeline import (
    dedup,
    language,
    normalize,
    pii,
    profile,
    quality,
    report_html,
    report_markdown,
    tokenize,
)
from pipeline.config import ResolvedSource, resolve_source
from pipeline.io import readers, writers
from pipeline.io.json_stream import MalformedJSONError
from pipeline.quarantine import REJECT_SCHEMA
from pipeline.records import RECORD_SCHEMA, process_chunk
from schemas.audit import (
    AuditFile,
    AuditReport,
    ClusterExample,
    DuplicateView,
    FieldStats,
    FilePair,
    Verdict,
)
from schemas.mix import (
    DedupSpec,
    FiltersSpec,
    MixSpec,
    NormalizeSpec,
    PiiSpec,
    QualitySpec,
    SourceSpec,
    TokenizeSpec,
)
from schemas.report import DatasetProfile, RuleCount

EXAMPLES = 3
RECORD_DEDUP = DedupSpec()  # what a build removes by default
INSTRUCTION_DEDUP = DedupSpec(key="prompt", ngram=1, threshold=0.8)  # the same words, reordered or one changed
CLUSTER_EXAMPLES = 3  # per kind (exact, near)
FILE_PAIRS = 10
PREVIEW_CHARS = 72
TOKEN_BATCH = 50_000  # records tokenized at a time: only their lengths are kept
UNCUT = 1 << 30
CUTOFF = TokenizeSpec().cutoff_len
LANGUAGE_MISMATCH_SHARE = 0.10  # a file with more records outside its dataset's language is flagged
LOW_DIVERSITY_SHARE = 0.5  # ten leading words starting more instructions than this
SEVERITIES = ("high", "medium", "low", "info")
HTML_TAG = (r"(?i)</?(?:a|b|i|u|p|br|hr|h[1-6]|div|span|ul|ol|li|table|tr|td|th|img|script|style|html|body|head|"
            r"title|meta|link|form|input|button|strong|em|code|pre|iframe)(?:\s[^<>]{0,200})?/?>")
CONTENT_CHECKS: tuple[tuple[str, str], ...] = (("html", HTML_TAG),)  # (name, pattern over instruction/input/output)
SCHEMA_PARSE = ("malformed_json", "not_an_object")
SCHEMA_EMPTY = ("empty_output", "empty_instruction")
DEFAULT_QUALITY = QualitySpec()
QUALITY_RULES = tuple(rule for rule in quality.RULES  # the rules a build applies by default
                      if getattr(DEFAULT_QUALITY, rule.setting) not in (None, False))


class Progress(Protocol):
    def read(self, file: str, items: int, done: bool) -> None: ...

    def stage(self, name: str) -> None: ...


@dataclass(frozen=True)
class AuditSource:
    source: ResolvedSource
    dataset: str  # the PATH argument it was found under
    file: str  # its path as shown: relative to the working folder


@dataclass
class Readout:
    """Every file's readable records and rejects, with what reading it found."""

    records: pl.DataFrame
    rejected: pl.DataFrame
    items: Counter[str] = field(default_factory=Counter)
    formats: dict[str, set[str]] = field(default_factory=dict)
    repairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass
class Measured:
    """An audit before its verdicts: the report so far and the frames the verdicts also read."""

    report: AuditReport
    records: pl.DataFrame  # readable records, as a build's normalize leaves them, with lang
    record_dups: pl.DataFrame  # every duplicate by the record key (dedup.DUPLICATE_SCHEMA)
    instruction_dups: pl.DataFrame  # every duplicate by the instruction alone


@dataclass(frozen=True)
class Finding:
    count: int
    examples: list[str]
    detail: str = ""


# ---- reading -------------------------------------------------------------------------------------------------


def _source_name(path: Path, taken: set[str]) -> str:
    """A unique, id-safe name: the file name, else parent.file, else with a number."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", path.name).strip("_.-") or "data"
    name = safe if safe not in taken else f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.parent.name)}.{safe}"
    number = 2
    while name in taken:
        name, number = f"{safe}-{number}", number + 1
    taken.add(name)
    return name


def resolve(paths: Sequence[str], root: Path) -> list[AuditSource]:
    """One lenient source per file of each PATH (file, glob or folder), or per HF dataset folder; a path that
    does not resolve raises ``ConfigError`` with its reason."""
    taken: set[str] = set()
    found = []
    for text in paths:
        where = f"pipeline audit {text}"
        whole = resolve_source(where, SourceSpec(name="audit", path=text, lenient=True), root)
        for file in whole.files or (whole.folder,):
            assert file is not None
            spec = SourceSpec(name=_source_name(file, taken), path=str(file), task=text, lenient=True)
            single = (ResolvedSource(spec=spec, kind="files", files=(file,)) if whole.kind == "files" else
                      ResolvedSource(spec=spec, kind=whole.kind, folder=whole.folder))
            found.append(AuditSource(single, text, readers.display_path(file, root)))
    return found


def audit_spec(sources: Sequence[AuditSource]) -> MixSpec:
    """The spec the per-record stages read: a build's defaults, except that placeholder inputs are kept as they
    are so the audit can count them record by record (``placeholder_inputs``)."""
    return MixSpec(name="audit", sources=[s.source.spec for s in sources],
                   normalize=NormalizeSpec(placeholder_inputs=[]))


def strict_json_problem(path: Path) -> str | None:
    """What a strict read stops at in a JSON list that the lenient read let through without losing an item: a
    trailing comma before the closing ']', as "line L, column C: trailing comma before ']'" (the strict reader's
    words). None for other files and for lists that end well."""
    if path.suffix != ".json":
        return None
    with path.open("rb") as fh:
        if not fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            return None
        size = fh.seek(0, 2)
        start = max(0, size - 4096)
        fh.seek(start)
        tail = fh.read()
        end = re.search(rb",\s*(\])\s*$", tail)
        if end is None:
            return None
        fh.seek(0)
        newlines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    bracket = end.start(1)
    line = newlines - tail[bracket:].count(b"\n") + 1
    column = bracket - tail.rfind(b"\n", 0, bracket)
    return f"line {line}, column {column}: trailing comma before ']'"


def _problem(err: ValueError) -> str:
    if isinstance(err, MalformedJSONError):
        return f"line {err.line}, column {err.column}: {err.problem}; read up to there"
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'unreadable'}"


def read(sources: Sequence[AuditSource], spec: MixSpec, root: Path, progress: Progress | None = None) -> Readout:
    """Ingest, validate and normalize every file (``process_chunk``), file by file."""
    kept: list[pl.DataFrame] = [pl.DataFrame(schema=RECORD_SCHEMA)]
    rejected: list[pl.DataFrame] = [pl.DataFrame(schema=REJECT_SCHEMA)]
    out = Readout(records=kept[0], rejected=rejected[0])
    for item in sources:
        name = item.source.spec.name
        out.formats[name] = set()
        try:
            for chunk in readers.iter_chunks(item.source, root):
                result = process_chunk(chunk, spec)
                kept.append(result.kept)
                rejected.append(result.rejected)
                out.items[name] += result.n_input
                out.repairs.update(result.repairs)
                out.formats[name].add(result.format)
                if progress:
                    progress.read(item.file, result.n_input, False)
        except ValueError as err:  # malformed JSON a lenient read cannot skip, bad UTF-8, an unparsable file
            out.problems[name] = _problem(err)
        problem = strict_json_problem(item.source.files[0]) if item.source.files else None
        if problem and name not in out.problems:
            out.problems[name] = problem
        if progress:
            progress.read(item.file, 0, True)
    out.records, out.rejected = pl.concat(kept), pl.concat(rejected)
    return out


# ---- measuring -----------------------------------------------------------------------------------------------


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
        _, holding, _ = pii.find_pii(records, PiiSpec(action="quarantine", types=[detector.type]))
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
        clusters=clusters.height, largest_cluster=int(clusters["n"].max() or 0) + 1 if clusters.height else 0,
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


# ---- verdicts ------------------------------------------------------------------------------------------------


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
    VerdictRule("repairs", ((0.0, "info"),), "{count:,} repair(s) a build would make: {detail}"),
)


def findings(measured: Measured) -> dict[str, Finding]:
    """The facts the verdict rules read, by code."""
    report, records = measured.report, measured.records
    record_dups, instruction_dups = measured.record_dups, measured.instruction_dups
    schema = report.schema_problems
    invalid = {k: v for k, v in schema.items() if k not in SCHEMA_PARSE + SCHEMA_EMPTY}
    broken = [(f.source, f.problem) for f in report.files if f.problem]
    fields = {f.field: f for f in report.fields}
    cross = record_dups.filter(pl.col("source") != pl.col("kept_source"))
    within = record_dups.filter(pl.col("source") == pl.col("kept_source"))
    diversity = report.profile.diversity
    top = diversity.top_leading_words[:10]
    narrow = diversity.top10_share > LOW_DIVERSITY_SHARE
    missing_in = [f.source for f in report.files if f.repairs.get("missing_input")]
    similar = instruction_dups.join(record_dups, on="id", how="anti")  # a duplicated record is reported as such
    other_repairs = {k: v for k, v in report.repairs.items() if k not in ("missing_input", "placeholder_input")}

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
        "invalid_records": of(*invalid),
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


def _measure_records(records: pl.DataFrame, priority: list[str], stage: Callable[[str], None]) -> tuple[
        pl.DataFrame, dict[str, RuleCount], dict[str, RuleCount], tuple[DuplicateView, pl.DataFrame],
        tuple[DuplicateView, pl.DataFrame]]:
    """Language (added as ``lang``), quality and PII hits, and both duplicate views of the readable records."""
    found = language.detect_cached(records.select(
        pl.concat_str([pl.col("instruction"), pl.col("output")], separator="\n")).to_series())
    records = records.with_columns(found["lang"], found["lang_score"])
    stage("quality, PII")
    quality_found, pii_found = quality_hits(records), pii_hits(records)
    stage("duplicates")
    by_record = duplicate_view(records, RECORD_DEDUP, priority)
    by_instruction = duplicate_view(records.with_columns(pl.lit("").alias("input"), pl.lit("").alias("output")),
                                    INSTRUCTION_DEDUP, priority)
    return records, quality_found, pii_found, by_record, by_instruction


# ---- the whole audit -----------------------------------------------------------------------------------------


def run(paths: Sequence[str], tokenizer: Any = None, progress: Progress | None = None,
        root: Path | None = None) -> AuditReport:
    """Audit the datasets at ``paths`` (relative to ``root``, the working folder by default); ``tokenizer``
    (the LLaMA-2 tokenizer) gives the token lengths, which are left out without it."""
    measured = measure(paths, tokenizer, progress, root or Path.cwd())
    report = measured.report
    report.verdicts = verdicts(findings(measured), report.totals["items"])
    return report


def measure(paths: Sequence[str], tokenizer: Any, progress: Progress | None, root: Path) -> Measured:
    """Every measurement of the audit: read, then language, quality, PII, duplicates, tokens and the profile."""
    sources = resolve(paths, root)
    readout = read(sources, audit_spec(sources), root, progress)
    stage: Callable[[str], None] = progress.stage if progress else (lambda _: None)
    records, rejected = readout.records, readout.rejected
    inputs = input_values(records, rejected)
    placeholder = normalize.placeholder_mask(inputs["input"], NormalizeSpec().placeholder_inputs)
    inputs = inputs.with_columns(placeholder=placeholder, empty=(inputs["input"] == "") & ~placeholder)
    records = records.with_columns(  # what a build's normalize does with them
        pl.when(placeholder.head(records.height)).then(pl.lit("")).otherwise(pl.col("input")).alias("input"))
    repairs = Counter({fix: n for (_, fix), n in readout.repairs.items()})
    repairs["placeholder_input"] += int(placeholder.sum())

    # Tokenizing is the longest step, and the tokenizer's Rust code runs without the GIL: in a thread beside
    # language detection, the rules and dedup it keeps a second core busy (34 s instead of 45 s for alpaca-en).
    with ThreadPoolExecutor(max_workers=1) as background:
        tokens_future = background.submit(token_lengths, records, tokenizer) if tokenizer is not None else None
        stage("language, tokens" if tokens_future else "language")
        measured = _measure_records(records, [s.source.spec.name for s in sources], stage)
        stage("tokens")
        tokens = tokens_future.result() if tokens_future else None
    records, quality_found, pii_found, (record_view, record_dups), (instruction_view, instruction_dups) = measured
    stage("profile")
    note = ("LLaMA-2 tokens of each record as an Alpaca-template training example (BOS, prompt, answer, EOS), "
            "uncut" if tokens is not None else "no tokenizer: token lengths left out")
    dataset = profile.dataset_profile(records, tokens, note)
    files = audit_files(sources, readout, records, inputs, dataset, record_dups)
    schema_problems = {reason: rule_count(group["id"]) for (reason,), group in
                       rejected.sort("reason").group_by("reason", maintain_order=True)}
    report = AuditReport(
        paths=list(paths), tokenizer=getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
        totals={"files": len(files), "items": sum(readout.items.values()), "records": records.height,
                "rejected": rejected.height, "exact_duplicates": record_view.exact,
                "near_duplicates": record_view.near, "cross_file_duplicates": record_view.cross_file},
        verdicts=[], files=files, schema_problems=schema_problems, repairs=dict(sorted(repairs.items())),
        fields=field_stats(records, rejected, inputs, repairs),
        duplicates=record_view, instruction_duplicates=instruction_view, quality=quality_found, pii=pii_found,
        content=content_hits(records, tokens), profile=dataset,
    )
    return Measured(report, records, record_dups, instruction_dups)


def audit_files(sources: Sequence[AuditSource], readout: Readout, records: pl.DataFrame, inputs: pl.DataFrame,
                dataset: DatasetProfile, record_dups: pl.DataFrame) -> list[AuditFile]:
    """What each file holds and what is wrong with it, in the order read."""
    def per_source(frame: pl.DataFrame) -> dict[str, int]:
        return dict(frame.group_by("source").len().iter_rows())

    readable, duplicated = per_source(records), per_source(record_dups)
    languages = {mix.key: mix.languages for mix in dataset.languages_by_source}
    rejects: dict[str, dict[str, int]] = {}
    for source, reason, n in readout.rejected.group_by("source", "reason").len().sort("reason").iter_rows():
        rejects.setdefault(source, {})[reason] = n
    repairs: dict[str, Counter[str]] = {s.source.spec.name: Counter() for s in sources}
    for (source, fix), n in readout.repairs.items():
        repairs[source][fix] += n
    for source, n in per_source(inputs.filter("placeholder")).items():
        repairs[source]["placeholder_input"] += n
    return [AuditFile(
        file=s.file, dataset=s.dataset, source=(name := s.source.spec.name),
        format="+".join(sorted(readout.formats[name])) or "none", items=readout.items[name],
        records=readable.get(name, 0), rejected=rejects.get(name, {}), repairs=dict(sorted(repairs[name].items())),
        problem=readout.problems.get(name), languages=languages.get(name, {}), duplicates=duplicated.get(name, 0),
    ) for s in sources]


FORMATS = ("html", "md", "json")


def write(report: AuditReport, folder: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """audit.html / audit.md / audit.json into ``folder`` (created); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[Path], None]] = {
        "html": lambda path: path.write_text(report_html.render(report), encoding="utf-8"),
        "md": lambda path: path.write_text(report_markdown.render(report), encoding="utf-8"),
        "json": lambda path: writers.write_json(report.model_dump(mode="json"), path),
    }
    written = []
    for fmt in dict.fromkeys(formats):
        path = folder / f"audit.{fmt}"
        renderers[fmt](path)
        written.append(path)
    return written
