"""Stream the items of a JSON list or a JSON Lines file, in batches of parsed values.

Neither reader holds a second copy of the file: a JSON list is decoded element by element from a sliding text
buffer (the C scanner of the standard library, ``raw_decode``), JSON Lines line by line (orjson). A batch is a
set of parallel lists (values, start lines) rather than an object per item: at a million records the per-item
objects cost more than the parsing.

Malformed JSON raises ``MalformedJSONError`` with the file, line and column, unless the source is lenient: then
a trailing comma before ``]`` is accepted, and an element or line that cannot be parsed becomes a bad item
(value ``None``, its text and the error kept for the quarantine) and reading goes on with the next one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

BLOCK_CHARS = 1 << 18  # characters per read; 256K measured fastest (4M was ~30% slower: cache misses)
MAX_ELEMENT_CHARS = 1 << 26  # an element larger than this is malformed, not cut by the block boundary
_WS = re.compile(r"[ \t\n\r]*")
_AFTER_ELEMENT = re.compile(r"[ \t\n\r]*(,?)[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class MalformedJSONError(ValueError):
    def __init__(self, path: Path, line: int, column: int, problem: str) -> None:
        self.path, self.line, self.column, self.problem = path, line, column, problem
        super().__init__(
            f"{path}: line {line}, column {column}: {problem}. Set 'lenient: true' on this source to keep its "
            "valid records and quarantine the rest."
        )


@dataclass
class ItemBatch:
    """Consecutive items of one file: item ``first_index + i`` has value ``values[i]``, starting on ``lines[i]``
    (a row number for columnar files). ``bad`` maps the position of each unparsable item to (text, error)."""

    first_index: int
    values: list[Any] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def original(self, pos: int) -> str:
        """The item as JSON text: the source text of a bad item, the re-serialized value otherwise."""
        if pos in self.bad:
            return self.bad[pos][0]
        return orjson.dumps(self.values[pos], default=str).decode()


def iter_json_batches(path: Path, lenient: bool = False, batch_size: int = 50_000) -> Iterator[ItemBatch]:
    """Batches of a JSON list (first non-blank character ``[``) or of a JSON Lines file (anything else)."""
    with open(path, encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        reader = _list_batches if head.startswith("[") else _line_batches
        yield from reader(path, fh, lenient, batch_size)


def _line_batches(path: Path, fh: TextIO, lenient: bool, batch_size: int) -> Iterator[ItemBatch]:
    batch = ItemBatch(0)
    loads = orjson.loads
    for line_no, line in enumerate(fh, start=1):
        try:
            batch.values.append(loads(line))
        except orjson.JSONDecodeError:
            if not line.strip():
                continue
            text = line.rstrip("\r\n")
            err = _parse_error(text)  # without the newline, a cut-off line reads as "unexpected end of data"
            if not lenient:
                raise MalformedJSONError(path, line_no, err.colno, err.msg) from None
            batch.bad[len(batch.values)] = (text, f"line {line_no}, column {err.colno}: {err.msg}")
            batch.values.append(None)
        batch.lines.append(line_no)
        if len(batch.values) == batch_size:
            yield batch
            batch = ItemBatch(batch.first_index + batch_size)
    if batch.values:
        yield batch


def _parse_error(text: str) -> orjson.JSONDecodeError:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return err
    raise AssertionError("text parses without the line ending")


class _ListScanner:
    """A text buffer over the file that always starts at a line start, so columns can be computed locally."""

    def __init__(self, path: Path, fh: TextIO) -> None:
        self.path, self.fh = path, fh
        self.buf = ""
        self.eof = False
        self.line = 1  # the line number at buf[counted_to]
        self.counted_to = 0
        self.refill(0)

    def refill(self, keep_from: int) -> int:
        """Drop the lines before ``keep_from``, append a block; return keep_from's index in the new buffer."""
        cut = self.buf.rfind("\n", 0, keep_from) + 1
        self.line_at(cut)
        chunk = self.fh.read(BLOCK_CHARS)
        self.eof = len(chunk) < BLOCK_CHARS
        self.buf = self.buf[cut:] + chunk
        self.counted_to = 0
        return keep_from - cut

    def line_at(self, pos: int) -> int:
        if pos > self.counted_to:
            self.line += self.buf.count("\n", self.counted_to, pos)
            self.counted_to = pos
        return self.line

    def column_at(self, pos: int) -> int:
        return pos - self.buf.rfind("\n", 0, pos)

    def skip_ws(self, pos: int) -> int:
        while True:
            pos = _WS.match(self.buf, pos).end()  # type: ignore[union-attr]
            if pos < len(self.buf) or self.eof:
                return pos
            pos = self.refill(pos)

    def error(self, pos: int, problem: str) -> MalformedJSONError:
        return MalformedJSONError(self.path, self.line_at(pos), self.column_at(pos), problem)


class _BadElement(Exception):
    def __init__(self, start: int, err: json.JSONDecodeError) -> None:
        self.start, self.err = start, err


def _list_batches(path: Path, fh: TextIO, lenient: bool, batch_size: int) -> Iterator[ItemBatch]:
    """Three speeds: a run of pretty-printed elements is parsed by orjson in one call (``_decode_run``); an
    element the run cannot take is decoded alone by ``raw_decode``; anything unusual (the list end, a trailing
    comma, an element across the buffer's end, a malformed element) takes the slow path."""
    sc = _ListScanner(path, fh)
    pos = sc.skip_ws(0) + 1  # past '['
    after_comma = False
    decode, after = _DECODER.raw_decode, _AFTER_ELEMENT.match
    batch = ItemBatch(0)
    values, lines = batch.values, batch.lines
    while True:
        if len(values) >= batch_size:
            yield batch
            batch = ItemBatch(batch.first_index + len(values))
            values, lines = batch.values, batch.lines
        buf = sc.buf
        run = _decode_run(buf, pos)
        if run is not None:
            run_values, starts, end = run
            values.extend(run_values)
            lines.extend([sc.line_at(start) for start in starts])
        else:
            try:
                value, end = decode(buf, pos)
                start = pos
                if end == len(buf) and not sc.eof:  # a number cut by the block's end decodes, shortened
                    raise json.JSONDecodeError("element may go on in the next block", buf, end)
            except json.JSONDecodeError:
                pos = sc.skip_ws(pos)
                if _at_list_end(sc, pos, after_comma, lenient):
                    break
                try:
                    value, start, end = _decode_element(sc, pos)
                except _BadElement as bad:
                    if not lenient:
                        raise sc.error(bad.err.pos, bad.err.msg) from None
                    pos, after_comma = _quarantine(sc, bad, batch), False
                    continue
                buf = sc.buf
            values.append(value)
            lines.append(sc.line_at(start))
        sep = after(buf, end)
        pos = sep.end()  # type: ignore[union-attr]
        if pos >= len(buf) and not sc.eof:
            pos = sc.skip_ws(sc.refill(end))
            buf = sc.buf
            if pos < len(buf) and buf[pos] == ",":
                pos, after_comma = pos + 1, True
                continue
        elif sep.group(1):  # type: ignore[union-attr]
            after_comma = True
            continue
        if pos < len(buf) and buf[pos] == "]":
            break
        if pos >= len(buf):
            raise sc.error(pos, "unexpected end of file: the list is not closed with ']'")
        raise sc.error(pos, f"expected ',' or ']' between list elements, found {buf[pos]!r}")
    if values:
        yield batch


def _decode_run(buf: str, pos: int) -> tuple[list[Any], list[int], int] | None:
    """Parse every complete element from ``pos`` to the buffer's last top-level closing line at once.

    A raw newline can only stand between tokens in JSON, so in a pretty-printed list the line ``<indent>}``
    (the indent of the element's own ``{`` line, then an optional comma) closes a top-level element. orjson
    parses the span as a list; a span cut inside an element would leave a bracket open and fail to parse, so
    success proves the cut. The elements' start lines are the lines ``<indent>{``; when they do not count
    one per element (hand-made layouts), or anything else is unusual, the caller decodes element by element.
    """
    line_start = buf.rfind("\n", 0, pos) + 1
    indent = buf[line_start:pos]
    if pos >= len(buf) or buf[pos] != "{" or indent.strip(" \t"):
        return None
    closer = "\n" + indent + "}"
    cut = buf.rfind(closer, pos)
    while cut != -1:
        end = cut + len(closer)
        line_end = buf.find("\n", end)
        if line_end != -1 and buf[end:line_end].strip(" \t\r") in ("", ","):
            break
        cut = buf.rfind(closer, pos, cut)
    if cut == -1:
        return None
    try:
        values = orjson.loads("[" + buf[pos:end] + "]")
    except orjson.JSONDecodeError:
        return None
    opener = "\n" + indent + "{"
    starts = [pos]
    found = buf.find(opener, pos, end)
    while found != -1:
        starts.append(found + 1)
        found = buf.find(opener, found + 1, end)
    if len(starts) != len(values):
        return None
    return values, starts, end


def _at_list_end(sc: _ListScanner, pos: int, after_comma: bool, lenient: bool) -> bool:
    if pos < len(sc.buf) and sc.buf[pos] == "]":
        if after_comma and not lenient:
            raise sc.error(pos, "trailing comma before ']'")
        return True
    if pos >= len(sc.buf):
        raise sc.error(pos, "unexpected end of file: the list is not closed with ']'")
    return False


def _quarantine(sc: _ListScanner, bad: _BadElement, batch: ItemBatch) -> int:
    """Record a malformed element as a bad item and return where the next element may start."""
    problem = f"line {sc.line_at(bad.err.pos)}, column {sc.column_at(bad.err.pos)}: {bad.err.msg}"
    start, end = _skip_bad_element(sc, bad.start, bad.err.pos)
    batch.bad[len(batch.values)] = (sc.buf[start:end].rstrip().rstrip(","), problem)
    batch.values.append(None)
    batch.lines.append(sc.line_at(start))
    return end


def _decode_element(sc: _ListScanner, start: int) -> tuple[Any, int, int]:
    """Decode the element at ``start``, reading on while it may run past the buffer; return value, start, end."""
    while True:
        try:
            value, end = _DECODER.raw_decode(sc.buf, start)
            if end < len(sc.buf) or sc.eof:
                return value, start, end
            start = sc.refill(start)
        except json.JSONDecodeError as err:
            cut_short = err.msg.startswith("Unterminated string") or err.pos >= len(sc.buf) - 16
            if sc.eof or not cut_short or len(sc.buf) - start > MAX_ELEMENT_CHARS:
                raise _BadElement(start, err) from None
            start = sc.refill(start)


def _skip_bad_element(sc: _ListScanner, start: int, error_pos: int) -> tuple[int, int]:
    """Span of a malformed element: up to the next line indented like it that opens an element or the list end."""
    next_element = re.compile(r"\n[ \t]{%d}(?=[{\]])" % (sc.column_at(start) - 1))
    while True:
        found = next_element.search(sc.buf, max(error_pos, start + 1))
        if found:
            return start, found.start() + 1
        if sc.eof:
            closing = sc.buf.rfind("]")
            return start, closing if closing > error_pos else len(sc.buf)
        shift = start
        start = sc.refill(start)
        error_pos -= shift - start
