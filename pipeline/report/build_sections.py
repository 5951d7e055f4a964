"""A build's report as sections: ``build_document(report)`` from a ``BuildReport``, and the sections a build and an
audit share (``profile_sections``: the dataset profile; ``memory_section``: the memory estimate).

Contract: pure functions of the report. Summary sections come first, details after; sections without data are
left out; nothing here reads a clock or a path, so one report always gives the same document.
"""

from __future__ import annotations

from pipeline.formats import alias_repair
from pipeline.report.document import (
    Block,
    Bullets,
    Chart,
    Document,
    Section,
    Series,
    Share,
    Table,
    Text,
    bin_labels,
    counted,
    rule_table,
    table,
)
from schemas.report import BuildReport, DatasetProfile, Distribution, GroupCount, MemoryReport, SourceSummary


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- shared: the dataset profile and the memory estimate -------------------------------------------------------


def profile_sections(profile: DatasetProfile, prefix: str, task: str, source: str) -> list[Section]:
    """Languages, lengths, diversity and composition of a set of records; ``task`` / ``source`` name the two
    groupings (task and source in a build, dataset and file in an audit)."""
    languages = profile.languages
    shown = languages[:8]
    rest = sum(g.records for g in languages[8:])
    lang_chart = Chart("bar", "Records per language", tuple(g.key for g in shown) + (("other",) if rest else ()),
                       (Series("records", tuple(float(g.records) for g in shown) + ((float(rest),) if rest else ())),))
    by_group = table([source, "records", "main language", "share", "languages"],
                     [(m.key, m.records, m.top, Share(m.top_share), counted(m.languages))
                      for m in profile.languages_by_source])
    lengths = profile.lengths
    measures: list[tuple[str, Distribution]] = [("prompt characters", lengths.prompt_chars),
                                                ("output characters", lengths.output_chars)]
    if lengths.tokens is not None:
        measures.append(("LLaMA-2 tokens", lengths.tokens))
    charts = [Chart("histogram", f"{_sentence(name)} per record", bin_labels(d.edges),
                    (Series("records", tuple(float(c) for c in d.counts)),)) for name, d in measures]
    d = profile.diversity
    leads = Chart("bar", "Most frequent leading words", tuple(g.key for g in d.top_leading_words),
                  (Series("instructions", tuple(float(g.records) for g in d.top_leading_words)),))
    return [
        Section(_sentence(f"{prefix}languages"), (
            Text(f"{profile.records:,} records: " + counted({g.key: g.records for g in languages}) + "."),
            lang_chart, by_group)),
        Section(_sentence(f"{prefix}lengths"), (
            Text(f"{_sentence(lengths.tokens_note)}."), *charts,
            table(["measure", "records", "mean", "p50", "p90", "p95", "p99", "max"],
                  [(name, x.count, x.mean, x.p50, x.p90, x.p95, x.p99, x.max) for name, x in measures]))),
        Section(_sentence(f"{prefix}instruction diversity"), (
            Text(f"{d.instructions:,} instructions, {d.distinct_instructions:,} distinct; {d.leading_words:,} distinct "
                 f"leading words, the ten most frequent start {d.top10_share:.1%} of them. Word bigrams over "
                 f"{d.sample:,} instructions (seeded sample): entropy {d.bigram_entropy:.2f} bits, distinct-2 "
                 f"{d.distinct_bigrams:.3f}."),
            leads)),
        Section(_sentence(f"{prefix}composition"), (
            _composition(task, profile.by_task), _composition(source, profile.by_source))),
    ]


def _composition(name: str, groups: list[GroupCount]) -> Table:
    return table([name, "records", "share"], [(g.key, g.records, Share(g.share)) for g in groups])


def memory_section(memory: MemoryReport) -> Section:
    targets = memory.target_modules if isinstance(memory.target_modules, str) else ", ".join(memory.target_modules)
    parts = ("weights", "gradients", "optimizer", "activations", "overhead")
    methods = memory.methods
    return Section("Memory estimate", (
        Text(f"GPU memory to fine-tune a {memory.model} model ({memory.model_from}) on rows of {memory.seq_len:,} "
             f"tokens (`tokenize.cutoff_len`), micro batch {memory.micro_batch_size}, LoRA r={memory.lora_r} "
             f"alpha={memory.lora_alpha} on {targets}, gradient checkpointing "
             f"{'on' if memory.gradient_checkpointing else 'off'}; this build's `train.method` is {memory.chosen}."),
        table(["method", "parameters", "trained", *parts, "total GB"],
              [(m.method, f"{m.parameters / 1e9:.2f}B", f"{m.trainable / 1e6:,.1f}M",
                *(getattr(m, p) for p in parts), m.total) for m in methods]),
        Chart("stacked", "GPU memory by part", tuple(m.method for m in methods),
              tuple(Series(p, tuple(getattr(m, p) for m in methods)) for p in parts), unit="GB"),
        Text("Assumptions (pipeline/memory.py):"),
        Bullets(tuple(memory.assumptions)),
    ))


# ---- a build's report ------------------------------------------------------------------------------------------


def build_document(report: BuildReport) -> Document:
    t = report.totals
    sections = [s for s in (
        _advice(report), _changes(report), _funnel(report), _sources(report), _funnel_by_source(report),
        _quality(report),
        _pii(report), _dedup(report), _decontamination(report), _split(report), _mixture(report), _tokens(report),
    ) if s is not None]
    if report.profile is not None:
        sections += profile_sections(report.profile, "Train split: ", "task", "source")
    if report.memory is not None:
        sections.append(memory_section(report.memory))
    sections.append(_ledger(report))
    return Document(
        title=f"Build report: {report.name}",
        lead=(f"{t['input']:,} records in: {t['train']:,} train rows, {t.get('eval', 0):,} eval, {t['rejected']:,} "
              f"rejected, {t.get('duplicates', 0):,} duplicates, {t.get('sampled_out', 0):,} sampled out, "
              f"{t.get('repeats', 0):,} repeats."),
        byline=f"Spec sha256 `{report.spec_hash[:12]}`, report version {report.version}.",
        sections=tuple(sections),
    )


def _changes(report: BuildReport) -> Section | None:
    """A scheduled build's records against the previous version's (pipeline/versions.py)."""
    c = report.changes
    if c is None:
        return None
    since = f"version {c.previous}" if c.previous else "nothing (this is the first version)"
    kinds = ("added", "removed", "changed", "unchanged")
    return Section("Changes", (
        Text(f"Against {since}, by record id: {c.added:,} added, {c.removed:,} removed, {c.changed:,} changed (same "
             f"id, different text), {c.unchanged:,} unchanged."),
        table(["source", *kinds], [(x.key, *(getattr(x, k) for k in kinds)) for x in c.by_source]),
        table(["task", *kinds], [(x.key, *(getattr(x, k) for k in kinds)) for x in c.by_task]),
    ), summary=True)


def _advice(report: BuildReport) -> Section | None:
    return Section("Advice", (Bullets(tuple(report.advice)),), summary=True) if report.advice else None


def _funnel(report: BuildReport) -> Section:
    rows = [f for f in report.funnel if f.source is None]
    return Section("Funnel", (
        Text("Records reaching each stage, kept by it, and removed (with why), all sources:"),
        Chart("stacked", "Records kept and removed at each stage", tuple(f.stage for f in rows),
              (Series("kept", tuple(float(f.kept) for f in rows)),
               Series("removed", tuple(float(f.rejected) for f in rows)))),
        table(["stage", "in", "kept", "removed", "why"],
              [(f.stage, f.input, f.kept, f.rejected, counted(f.reasons)) for f in rows]),
    ), summary=True)


def _sources(report: BuildReport) -> Section:
    """The sources table, and a line naming the keys ``format: auto`` read under an alias, when any was."""
    aliased = [_aliases(s) for s in report.sources if s.aliases]
    note = (Text("Read under key aliases (format: auto; a source's columns choose otherwise): "
                 + "; ".join(aliased) + "."),) if aliased else ()
    return Section("Sources", (table(
        ["source", "task", "general", "format", "input", "kept", "rejected", "duplicates", "rejected because",
         "repaired"],
        [(s.name, s.task, s.general, s.format, s.input, s.kept, s.rejected, s.duplicates, counted(s.reasons),
          counted(s.repairs)) for s in report.sources]), *note))


def _aliases(source: SourceSummary) -> str:
    """``gpteacher: output <- response (12,208 records)``."""
    return f"{source.name}: " + ", ".join(
        f"{field} <- {keys} ({sum(source.repairs.get(alias_repair(field, k), 0) for k in keys.split('+')):,} records)"
        for field, keys in source.aliases.items())


def _funnel_by_source(report: BuildReport) -> Section | None:
    """Per source: its input, what each stage removed, and what is left."""
    by_source: dict[str, list] = {}
    for f in report.funnel:
        if f.source is not None:
            by_source.setdefault(f.source, []).append(f)
    if len(by_source) < 2:
        return None
    stages = [f.stage for f in next(iter(by_source.values()))]
    active = [k for k, stage in enumerate(stages) if any(rows[k].rejected for rows in by_source.values())]
    names = list(by_source)
    return Section("Funnel by source", (
        table(["source", "input", *(stages[k] for k in active), "left"],
              [(name, rows[0].input, *(rows[k].rejected for k in active), rows[-1].kept)
               for name, rows in by_source.items()]),
        Chart("stacked", "Records per source: left after every stage, and removed by each",
              tuple(names), (Series("left", tuple(float(by_source[n][-1].kept) for n in names)),
                             *(Series(stages[k], tuple(float(by_source[n][k].rejected) for n in names))
                               for k in active))),
    ))


def _quality(report: BuildReport) -> Section | None:
    return Section("Quality rules", (rule_table("rule", report.quality),)) if report.quality else None


def _pii(report: BuildReport) -> Section | None:
    if not (report.pii and report.pii.found):
        return None
    return Section("Personal data", (Text(f"Action: {report.pii.action}."),
                                      table(["type", "found"], sorted(report.pii.found.items()))))


def _dedup(report: BuildReport) -> Section | None:
    d = report.dedup
    if d is None:
        return None
    blocks: list[Block] = [
        Text(f"Key `{d.key}`, exact {'on' if d.exact else 'off'}, near {'on' if d.near else 'off'} (Jaccard >= "
             f"{d.threshold} over {d.ngram}-token shingles, {d.num_perm} permutations"
             + (f", {d.bands} bands x {d.rows} rows, verified by {d.verify}" if d.bands else "") + ")."),
        table(["exact removed", "near removed", "candidate pairs", "verified pairs", "clusters", "largest cluster",
               "across sources", "against references"],
              [(d.exact_removed, d.near_removed, d.candidate_pairs or 0, d.verified_pairs or 0, d.clusters or 0,
                d.largest_cluster or 0, d.cross_source, d.against_references)]),
    ]
    if d.examples:
        blocks += [Text("Near-duplicates closest to the threshold:"),
                   table(["removed", "kept", "similarity"],
                         [(e.id, e.kept_id, round(e.similarity, 3)) for e in d.examples])]
    return Section("Deduplication", tuple(blocks))


def _decontamination(report: BuildReport) -> Section | None:
    if not report.decontamination:
        return None
    return Section("Decontamination", (rule_table("eval set", report.decontamination),))


def _split(report: BuildReport) -> Section | None:
    s = report.split
    if s is None:
        return None
    return Section("Train/eval split", (Text(
        f"{s.eval:,} eval records ({counted(s.by_task)}); {s.shared_ids} shared ids, {s.shared_exact_keys} shared "
        f"exact keys. {_sentence(s.note)}."),))


def _mixture(report: BuildReport) -> Section | None:
    m = report.mixture
    if m is None:
        return None
    general = "none" if m.general_share is None else f"{m.general_share:.0%}"
    blocks: list[Block] = [
        Text(f"{m.achieved:,} of {m.size:,} {m.unit}; general share {m.general_share_achieved:.1%} (target "
             f"{general}); max_repeats {m.max_repeats:g}, {m.sampling} sampling, seed {m.seed}."),
        Chart("bar", f"Target and achieved {m.unit} per task", tuple(x.task for x in m.tasks),
              (Series("target", tuple(float(x.target) for x in m.tasks)),
               Series("achieved", tuple(float(x.achieved) for x in m.tasks))), unit=m.unit),
        table(["task", "target", "achieved", "share"],
              [(x.task, x.target, x.achieved, Share(x.share)) for x in m.tasks]),
        table(["source", "task", "available", "target", "achieved", "shortfall", "rows", "copies"],
              [(x.source, x.task, x.available, x.target, x.achieved, x.shortfall, x.rows, x.copies)
               for x in m.sources]),
    ]
    if m.warnings:
        blocks.append(Bullets(tuple(f"warning: {w}" for w in m.warnings)))
    return Section("Mixture", tuple(blocks))


def _tokens(report: BuildReport) -> Section | None:
    k = report.tokens
    if k is None:
        return None
    packed = f", packed ({k.packing_efficiency:.1%} full)" if k.packing_efficiency is not None else ""
    return Section("Tokens", (
        Text(f"{k.tokenizer}, template {k.template}, cutoff {k.cutoff_len}{packed}: {k.train_tokens:,} train tokens "
             f"in {k.train_rows:,} rows, {k.eval_tokens:,} eval tokens."),
        table(["task", "records", "mean", "p50", "p95", "max", "truncated", "dropped"],
              [(x.key, x.count, round(x.mean, 1), x.p50, x.p95, x.max, x.truncated, x.dropped) for x in k.by_task]),
    ))


def _ledger(report: BuildReport) -> Section:
    return Section("Ledger", (
        Text("Every input record has exactly one fate:"),
        table(["source", "input", "kept", "rejected", "duplicate", "sampled out", "balanced"],
              [(r.source, r.input, r.kept, r.rejected, r.duplicate, r.sampled_out, r.balanced) for r in report.ledger]),
    ))
