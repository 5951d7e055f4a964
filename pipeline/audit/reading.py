"""`pipeline audit`, reading: every file of the PATH arguments as a source of its own, read leniently.

Contract: ``resolve(paths, root, columns)`` turns each PATH (file, glob or folder) into one ``AuditSource`` per
file (or per HF dataset folder), each with a unique, id-safe source name, read with ``format: auto`` (its key
aliases included) and the explicit field map ``columns`` (``parse_columns`` reads it from ``--columns`` items);
``read(sources, audit_spec(sources), root)`` ingests, validates and normalizes them as a build would
(``process_chunk``) and returns a ``Readout``: the
readable records, the rejects, and per file the items read, formats, repairs and the problem that stopped or
would stop a strict read (``strict_json_problem``). A malformed item is counted and a broken file is reported;
neither stops the audit. Nothing else is measured here.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from pipeline.config import ConfigError, ResolvedSource, resolve_source
from pipeline.io import readers
from pipeline.io.json_stream import MalformedJSONError
from pipeline.records import RECORD_SCHEMA, process_chunk
from pipeline.stage import QUARANTINE_SCHEMA
from schemas.mix import CANONICAL_FIELDS, MixSpec, NormalizeSpec, SourceSpec


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


def _source_name(path: Path, taken: set[str]) -> str:
    """A unique, id-safe name: the file name, else parent.file, else with a number."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", path.name).strip("_.-") or "data"
    name = safe if safe not in taken else f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', path.parent.name)}.{safe}"
    number = 2
    while name in taken:
        name, number = f"{safe}-{number}", number + 1
    taken.add(name)
    return name


def parse_columns(values: Sequence[str]) -> dict[str, str]:
    """``--columns`` items (``FIELD=KEY``, e.g. ``output=response``) as a source's ``columns``: canonical field ->
    the key to read it from. A malformed item, an unknown field or a field given two keys raises ``ConfigError``."""
    columns: dict[str, str] = {}
    for item in values:
        field_name, sep, key = (part.strip() for part in item.partition("="))
        if not sep or not field_name or not key:
            raise ConfigError(f"--columns {item!r}: expected FIELD=KEY, e.g. output=response")
        check_columns({field_name: key}, f"--columns {item!r}")
        if columns.get(field_name, key) != key:
            raise ConfigError(f"--columns {item!r}: {field_name} is already read from {columns[field_name]!r}")
        columns[field_name] = key
    return columns


def check_columns(columns: Mapping[str, str], where: str = "columns") -> None:
    """``ConfigError`` naming the first field of ``columns`` that is not a canonical field, and the valid ones."""
    for field_name in columns:
        if field_name not in CANONICAL_FIELDS:
            close = difflib.get_close_matches(field_name, CANONICAL_FIELDS, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{where}: unknown canonical field {field_name!r}; {hint}"
                              f"valid: {', '.join(CANONICAL_FIELDS)}")


def resolve(paths: Sequence[str], root: Path, columns: Mapping[str, str] | None = None) -> list[AuditSource]:
    """One lenient source per file of each PATH (file, glob or folder), or per HF dataset folder, each read with
    ``columns`` (canonical field -> the key to read it from; ``format: auto``'s aliases still apply to the other
    fields); a path that does not resolve, or an unknown field, raises ``ConfigError`` with its reason."""
    check_columns(columns or {})
    taken: set[str] = set()
    found = []
    for text in paths:
        where = f"pipeline audit {text}"
        whole = resolve_source(where, SourceSpec(name="audit", path=text, lenient=True), root)
        for file in whole.files or (whole.folder,):
            assert file is not None
            spec = SourceSpec(name=_source_name(file, taken), path=str(file), task=text, lenient=True,
                              columns=dict(columns or {}))
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
    rejected: list[pl.DataFrame] = [pl.DataFrame(schema=QUARANTINE_SCHEMA)]
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
