"""`pipeline audit`: judge a dataset before spending GPU hours on it, without building anything.

Contract: ``run(paths, tokenizer, progress)`` reads files, globs and folders in any format the readers support,
leniently (a malformed item is counted, a broken file is reported, neither stops the audit), runs the checks a
build runs but removes nothing, and returns an ``AuditReport``: schema problems and repairs, empty and
placeholder fields, duplicates (a build's record key; and instructions alone), quality-rule, PII and content
hits, the dataset profile (languages, lengths in characters and LLaMA-2 tokens, diversity, composition), and
verdicts ranked by a table of rules. Each file is a source of its own (its name is the first part of its record
ids), so every count is also per file and duplicates across files are found like duplicates across sources.

The modules: ``reading`` (files to a ``Readout``, leniently), ``measures`` (the counters: hits, duplicates,
fields, token lengths), ``rules`` (findings and the verdict rule table), ``runner`` (``run``, ``measure``,
``write``). The names below are the ones used from outside the package. Files are read with ``format: auto``,
key aliases included (``response`` read as the output, ...: ``pipeline.formats.ALIASES``); ``columns`` (from
``--columns output=response``, ``parse_columns``) names a field's key explicitly and wins over the aliases.
"""

from pipeline.audit.reading import audit_spec, parse_columns, read, resolve
from pipeline.audit.runner import FORMATS, run, write

__all__ = ["FORMATS", "audit_spec", "parse_columns", "read", "resolve", "run", "write"]
