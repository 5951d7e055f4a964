"""report.md: a build's report.json as Markdown, readable in a terminal and in a GitHub pull request.

Contract: ``render(report)`` is a pure function of the ``BuildReport`` (no timestamps, no paths of this machine
beyond what the report holds), so the same build gives the same file; sections without data are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from schemas.report import BuildReport


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub table; numbers right-aligned, integers with thousands separators."""
    def cell(value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return f"{value:,.4g}"
        return str(value).replace("|", "\\|")

    rows = [[cell(v) for v in row] for row in rows]
    align = ["---:" if rows and all(r[k].replace(",", "").replace(".", "").isdigit() for r in rows) else "---"
             for k in range(len(header))]
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *[f"| {' | '.join(r)} |" for r in rows]]


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or ""


def render(report: BuildReport) -> str:
    t = report.totals
    out = [f"# Build report: {report.name}", "",
           f"**{t['input']:,} records in: {t['train']:,} train rows, {t.get('eval', 0):,} eval, "
           f"{t['rejected']:,} rejected, {t.get('duplicates', 0):,} duplicates, {t.get('sampled_out', 0):,} sampled "
           f"out, {t.get('repeats', 0):,} repeats.** Spec sha256 `{report.spec_hash[:12]}`, report version "
           f"{report.version}.", ""]
    if report.advice:
        out += ["## Advice", "", *[f"- {line}" for line in report.advice], ""]
    out += ["## Sources", ""]
    out += table(["source", "task", "general", "format", "input", "kept", "rejected", "duplicates", "rejected because",
                  "repaired"],
                 [(s.name, s.task, s.general, s.format, s.input, s.kept, s.rejected, s.duplicates, _reasons(s.reasons),
                   _reasons(s.repairs)) for s in report.sources])
    out += ["", "## Funnel", "", "Records reaching each stage, kept by it, and removed (with why), all sources:", ""]
    out += table(["stage", "in", "kept", "removed", "why"],
                 [(f.stage, f.input, f.kept, f.rejected, _reasons(f.reasons)) for f in report.funnel if f.source is None])
    if report.quality:
        out += ["", "## Quality rules", ""]
        out += table(["rule", "records", "examples"],
                     [(k, v.count, ", ".join(v.examples)) for k, v in report.quality.items()])
    if report.pii and report.pii.found:
        out += ["", "## Personal data", "", f"Action: {report.pii.action}.", ""]
        out += table(["type", "found"], sorted(report.pii.found.items()))
    if report.dedup:
        d = report.dedup
        out += ["", "## Deduplication", "",
                f"Key `{d.key}`, exact {'on' if d.exact else 'off'}, near {'on' if d.near else 'off'} (Jaccard >= "
                f"{d.threshold} over {d.ngram}-token shingles, {d.num_perm} permutations"
                + (f", {d.bands} bands x {d.rows} rows, verified by {d.verify}" if d.bands else "") + ").", ""]
        out += table(["exact removed", "near removed", "candidate pairs", "verified pairs", "clusters",
                      "largest cluster", "across sources", "against references"],
                     [(d.exact_removed, d.near_removed, d.candidate_pairs or 0, d.verified_pairs or 0, d.clusters or 0,
                       d.largest_cluster or 0, d.cross_source, d.against_references)])
        if d.examples:
            out += ["", "Near-duplicates closest to the threshold:", ""]
            out += table(["removed", "kept", "similarity"], [(e.id, e.kept_id, round(e.similarity, 3)) for e in d.examples])
    if report.decontamination:
        out += ["", "## Decontamination", ""]
        out += table(["eval set", "records", "examples"],
                     [(k, v.count, ", ".join(v.examples)) for k, v in report.decontamination.items()])
    if report.split:
        s = report.split
        out += ["", "## Train/eval split", "",
                f"{s.eval:,} eval records ({_reasons(s.by_task)}); {s.shared_ids} shared ids, {s.shared_exact_keys} "
                f"shared exact keys. {s.note[:1].upper()}{s.note[1:]}."]
    if report.mixture:
        m = report.mixture
        out += ["", "## Mixture", "",
                f"{m.achieved:,} of {m.size:,} {m.unit}; general share {m.general_share_achieved:.1%} (target "
                f"{'none' if m.general_share is None else f'{m.general_share:.0%}'}); max_repeats {m.max_repeats:g}, "
                f"{m.sampling} sampling, seed {m.seed}.", ""]
        out += table(["task", "target", "achieved", "share"], [(x.task, x.target, x.achieved, f"{x.share:.1%}")
                                                                for x in m.tasks])
        out += [""]
        out += table(["source", "task", "available", "target", "achieved", "shortfall", "rows", "copies"],
                     [(x.source, x.task, x.available, x.target, x.achieved, x.shortfall, x.rows, x.copies)
                      for x in m.sources])
        if m.warnings:
            out += ["", *[f"- warning: {w}" for w in m.warnings]]
    if report.tokens:
        k = report.tokens
        out += ["", "## Tokens", "",
                f"{k.tokenizer}, template {k.template}, cutoff {k.cutoff_len}"
                + (f", packed ({k.packing_efficiency:.1%} full)" if k.packing_efficiency is not None else "")
                + f": {k.train_tokens:,} train tokens in {k.train_rows:,} rows, {k.eval_tokens:,} eval tokens.", ""]
        out += table(["task", "records", "mean", "p50", "p95", "max", "truncated", "dropped"],
                     [(x.key, x.count, round(x.mean, 1), x.p50, x.p95, x.max, x.truncated, x.dropped) for x in k.by_task])
    out += ["", "## Ledger", "", "Every input record has exactly one fate:", ""]
    out += table(["source", "input", "kept", "rejected", "duplicate", "sampled out", "balanced"],
                 [(r.source, r.input, r.kept, r.rejected, r.duplicate, r.sampled_out, r.balanced) for r in report.ledger])
    return "\n".join(out) + "\n"
