"""What the CLI prints about a finished build or audit: rich tables and lines made from its report alone; under
``--quiet`` a build prints its one-line result (``build_line``) and nothing else."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from pipeline import terminal

if TYPE_CHECKING:
    from pipeline.records import Shard
    from schemas.audit import AuditReport
    from schemas.report import BuildReport


def counts(report: BuildReport) -> str:
    totals = report.totals
    return (f"{report.name}: {totals['input']:,} records in, {totals['train']:,} train, {totals['eval']:,} eval, "
            f"{totals['rejected']:,} rejected, {totals.get('duplicates', 0):,} duplicates")


def build_line(report: BuildReport, out: Path) -> str:
    """A build's one-line result: its counts and where it wrote them."""
    return f"{counts(report)}; wrote {out}"


def build_table(report: BuildReport) -> Table:
    """The sources of a build: records in, kept, rejected and duplicates, with the reasons and repairs."""
    table = Table(title=counts(report))
    for column in ("source", "format", "input", "kept", "rejected", "duplicates", "rejected because", "repaired"):
        numeric = column in ("input", "kept", "rejected", "duplicates")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    for s in report.sources:
        reasons = "\n".join(f"{k} {v:,}" for k, v in sorted(s.reasons.items(), key=lambda kv: -kv[1]))
        repairs = "\n".join(f"{k} {v:,}" for k, v in s.repairs.items())
        table.add_row(s.name, s.format, f"{s.input:,}", f"{s.kept:,}", f"{s.rejected:,}", f"{s.duplicates:,}",
                      reasons, repairs)
    return table


def per_record_table(name: str, shards: list[Shard]) -> Table:
    """What ``pipeline validate`` read: per source, records in, kept and rejected by the per-record stages."""
    sources: dict[str, list[Shard]] = {}
    for shard in shards:
        sources.setdefault(shard.source, []).append(shard)
    total_in = sum(s.n_input for s in shards)
    total_kept = sum(s.kept.height for s in shards)
    table = Table(title=f"{name}: {total_in:,} records in, {total_kept:,} pass the per-record stages, "
                        f"{total_in - total_kept:,} rejected (dedup, the mixture and tokenization not run)")
    for column in ("source", "format", "input", "kept", "rejected", "rejected because", "repaired"):
        table.add_column(column, justify="right" if column in ("input", "kept", "rejected") else "left", no_wrap=True)
    for source, parts in sources.items():
        reasons: Counter[str] = Counter()
        repairs: Counter[str] = Counter()
        for part in parts:
            reasons.update(part.rejected["reason"].to_list())
            repairs.update({fix: n for (_, fix), n in part.repairs.items()})
        kept = sum(p.kept.height for p in parts)
        table.add_row(source, "+".join(sorted(set().union(*(p.formats for p in parts)))),
                      f"{sum(p.n_input for p in parts):,}", f"{kept:,}", f"{sum(p.rejected.height for p in parts):,}",
                      "\n".join(f"{k} {v:,}" for k, v in reasons.most_common()),
                      "\n".join(f"{k} {v:,}" for k, v in sorted(repairs.items())))
    return table


def print_build(report: BuildReport, out: Path) -> None:
    """What `pipeline build` prints when it has written ``out``: the sources table, a line per stage that has
    something to say, and the files written; under --quiet ``build_line`` only."""
    if terminal.quiet:
        terminal.result(build_line(report, out))
        return
    console = terminal.console
    console.print(build_table(report))
    tokens = report.tokens
    if tokens:
        packed = f", packed {tokens.packing_efficiency:.1%} full" if tokens.packing_efficiency is not None else ""
        console.print(f"tokenized with {tokens.tokenizer} ({tokens.template}, cutoff {tokens.cutoff_len}): "
                      f"{tokens.train_tokens:,} train tokens in {tokens.train_rows:,} rows{packed}, "
                      f"{tokens.eval_tokens:,} eval tokens", soft_wrap=True, highlight=False)
    if report.dedup:
        d = report.dedup
        near = f", {d.near_removed:,} near (Jaccard >= {d.threshold}, {d.verified_pairs:,} of {d.candidate_pairs:,} " \
               f"LSH candidate pairs verified)" if d.near else ""
        console.print(f"dedup: {d.exact_removed:,} exact{near}; {d.cross_source:,} across sources, "
                      f"{d.against_references:,} against references", soft_wrap=True, highlight=False)
    if report.pii and report.pii.found:
        verb = {"redact": "redacted", "quarantine": "quarantined", "flag": "flagged"}[report.pii.action]
        console.print(f"pii: {verb} " + ", ".join(f"{k} {v:,}" for k, v in report.pii.found.items()),
                      soft_wrap=True, highlight=False)
    if report.split:
        console.print(f"split: {report.split.eval:,} eval records "
                      f"({', '.join(f'{k} {v:,}' for k, v in report.split.by_task.items())}); "
                      f"{report.split.shared_ids} shared ids, {report.split.shared_exact_keys} shared exact keys",
                      soft_wrap=True, highlight=False)
    if report.mixture:
        m = report.mixture
        console.print(f"mixture: {m.achieved:,} of {m.size:,} {m.unit} ("
                      + ", ".join(f"{t.task} {t.achieved:,}/{t.target:,}" for t in m.tasks)
                      + f"); general share {m.general_share_achieved:.1%}; "
                      f"{report.totals.get('sampled_out', 0):,} sampled out, "
                      f"{report.totals.get('repeats', 0):,} repeats",
                      soft_wrap=True, highlight=False)
        for warning in m.warnings:
            console.print(f"[yellow]mixture warning:[/] {warning}", soft_wrap=True, highlight=False)
    if report.changes:
        c = report.changes
        console.print(f"changes since {c.previous or 'nothing (first version)'}: {c.added:,} added, {c.removed:,} "
                      f"removed, {c.changed:,} changed, {c.unchanged:,} unchanged", soft_wrap=True, highlight=False)
    for line in report.advice:
        console.print(f"advice: {line}", soft_wrap=True, highlight=False)
    console.print(f"wrote [bold]{out}[/] ({', '.join(sorted(p.name for p in out.iterdir()))})", soft_wrap=True)


def audit_tables(report: AuditReport) -> list[Table]:
    """The files of an audit and its verdicts, worst first."""
    files = Table(title=f"{report.totals['items']:,} items in {len(report.files)} file(s): "
                        f"{report.totals['records']:,} readable records, {report.totals['rejected']:,} rejected")
    for column in ("file", "format", "items", "records", "rejected", "duplicates", "languages", "problem"):
        files.add_column(column, justify="right" if column in ("items", "records", "rejected", "duplicates")
                         else "left", no_wrap=column not in ("problem", "languages"))
    for f in report.files:
        languages = ", ".join(f"{k} {v:,}" for k, v in list(f.languages.items())[:2])
        files.add_row(f.source, f.format, f"{f.items:,}", f"{f.records:,}", f"{sum(f.rejected.values()):,}",
                      f"{f.duplicates:,}", languages, f.problem or "")
    verdicts = Table(title="verdicts, worst first")
    for column in ("severity", "problem", "count", "what"):
        verdicts.add_column(column, justify="right" if column == "count" else "left",
                            no_wrap=column != "what")
    style = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}
    for v in report.verdicts:
        verdicts.add_row(Text(v.severity, style=style[v.severity]), v.code, f"{v.count:,}", v.message)
    return [files, verdicts]
