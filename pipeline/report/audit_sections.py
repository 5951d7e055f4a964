"""An audit's report as sections: ``audit_document(report)`` from an ``AuditReport``: verdicts, files, schema,
fields, duplicates, the dataset profile (``build_sections.profile_sections``), quality rules, personal data and
content.

Contract: pure functions of the report. Summary sections come first, details after; nothing here reads a clock
or a path, so one report always gives the same document.
"""

from __future__ import annotations

from pipeline.report.build_sections import profile_sections
from pipeline.report.document import Block, Document, Section, Share, Text, counted, rule_table, table
from schemas.audit import AuditReport, DuplicateView


def audit_document(report: AuditReport) -> Document:
    t = report.totals
    sections = [
        _verdicts(report), _files(report), _schema(report), _fields(report),
        _duplicates("Duplicate records", report.duplicates,
                    "What a build's dedup would remove: the whole record (`key: record`)"),
        _duplicates("Similar instructions", report.instruction_duplicates,
                    "The instruction alone, as a set of words (characters of CJK text)"),
        *profile_sections(report.profile, "", "dataset", "file"),
        Section("Quality rules", (Text("Records breaking each rule at a build's defaults (a record can break "
                                       "several):"), rule_table("rule", report.quality))),
        Section("Personal data", (Text("Records holding each type (validated as a build validates it):"),
                                  rule_table("type", report.pii))),
        Section("Content", (rule_table("check", report.content),)),
    ]
    return Document(
        title=f"Dataset audit: {', '.join(report.paths)}",
        lead=(f"{t['items']:,} items in {t['files']:,} file(s): {t['records']:,} readable records, {t['rejected']:,} "
              f"a build would reject, {t['exact_duplicates']:,} exact and {t['near_duplicates']:,} near duplicates; "
              f"{len(report.verdicts)} finding(s)."),
        byline=(f"Tokenizer {report.tokenizer or 'none'}; audit version {report.version}. Nothing was removed: "
                "every count is of what a build would do."),
        sections=tuple(sections),
    )


def _verdicts(report: AuditReport) -> Section:
    if not report.verdicts:
        return Section("Verdicts", (Text("No problem found."),), summary=True)
    return Section("Verdicts", (
        Text("The problems found, worst first:"),
        table(["severity", "problem", "count", "share", "what", "examples"],
              [(v.severity, v.code, v.count, Share(v.share), v.message, ", ".join(v.examples))
               for v in report.verdicts],
              badges=("severity",)),
    ), summary=True)


def _files(report: AuditReport) -> Section:
    return Section("Files", (table(
        ["file", "format", "items", "records", "rejected", "duplicates", "languages", "problem"],
        [(f.source, f.format, f.items, f.records, sum(f.rejected.values()), f.duplicates,
          counted(dict(list(f.languages.items())[:3])), f.problem or "") for f in report.files]),), summary=True)


def _schema(report: AuditReport) -> Section:
    blocks: list[Block] = [Text("Items a build would reject while reading and validating them, by reason:"),
                           rule_table("reason", report.schema_problems)]
    if report.repairs:
        repairs = sorted(report.repairs.items(), key=lambda kv: (-kv[1], kv[0]))
        blocks += [Text("Repairs a build would make (nothing is lost):"), table(["repair", "records"], repairs)]
    return Section("Schema", tuple(blocks))


def _fields(report: AuditReport) -> Section:
    return Section("Fields", (
        Text("Empty, placeholder and missing values (placeholders: inputs such as 'No input' or '<noinput>', "
             "unfilled slots such as '{{name}}' or '<nooutput>'):"),
        table(["field", "present", "empty", "placeholder", "missing key", "examples (empty, placeholder)"],
              [(f.field, f.present, f.empty.count, f.placeholder.count if f.placeholder else None, f.missing_key,
                ", ".join(f.empty.examples[:2] + (f.placeholder.examples[:2] if f.placeholder else [])))
               for f in report.fields]),
    ))


def _duplicates(title: str, view: DuplicateView, what: str) -> Section:
    blocks: list[Block] = [
        Text(f"{what}: exact after folding case and punctuation, near at Jaccard >= {view.threshold} over "
             f"{view.ngram}-token shingles (MinHash LSH, verified)."),
        table(["exact", "near", "rate", "across files", "clusters", "largest cluster"],
              [(view.exact, view.near, Share(view.rate), view.cross_file, view.clusters, view.largest_cluster)]),
    ]
    if view.pairs:
        blocks += [Text("Files sharing the most duplicates:"),
                   table(["file", "duplicates a record of", "kind", "records"],
                         [(p.file, p.kept_file, p.kind, p.count) for p in view.pairs])]
    if view.examples:
        blocks += [Text("Example clusters (the largest of each kind):"),
                   table(["kind", "kept", "size", "lowest similarity", "duplicates", "instruction"],
                         [(e.kind, e.kept_id, e.size, e.similarity, ", ".join(e.members), e.preview)
                          for e in view.examples])]
    return Section(title, tuple(blocks))
