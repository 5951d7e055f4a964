"""Stream the items of a JSON list or a JSON Lines file, in batches of parsed values.

Neither reader holds a second copy of the file: a JSON list is decoded element by element from a sliding text
buffer (the C scanner of the standard library, ``raw_decode``), JSON Lines line by line (orjson). A batch is a
set of parallel lists (values, start lines) rather than an object per item: at a million records the per-item
objects cost more than the parsing.

Malformed JSON raises ``MalformedJSONError`` with the file, line and column, unless the source is lenient: then
a trailing comma before ``]`` is accepted, and an element or line that cannot be parsed becomes a bad item
(value ``None``, its text and the error kept for the quarantine) and reading goes on with the next one. Both
readers call the same things malformed: a lone surrogate escape (``"\\ud800"``, which no UTF-8 writer takes)
and nesting deeper than the parser goes (orjson: 1024 levels; a list element: Python's recursion limit).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

from pipeline.io.items import ItemBatch

BLOCK_CHARS = 1 << 18  # characters per read; 256K measured fastest (4M was ~30% slower: cache misses)
MAX_ELEMENT_CHARS = 1 << 26  # an element larger than this is malformed, not cut by the block boundary
MAX_INDENT = 256  # a longer run of white space before an element's '{' is not a pretty-printed layout
RUN_ATTEMPTS = 3  # candidate cuts tried in a one-line list before decoding element by element
_WS = re.compile(r"[ \t\n\r]*")
_AFTER_ELEMENT = re.compile(r"[ \t\n\r]*(,?)[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class MalformedJSONError(ValueError):
    def __init__(self, path: Path, line: int, column: int, problem: str) -> None:
        self.path, self.line, self.column, self.problem = path, line, column, problem
        super().__init__(
            f"{path}: line {line}, column {column}: {problem}. Set 'lenient: true' on this source to keep its "
            "valid records and quarantine the rest."
        )

    def __reduce__(self) -> tuple[type, tuple[Path, int, int, str]]:
        """Pickled by its fields: a worker process (or a Dask worker) sends it back to the build."""
        return type(self), (self.path, self.line, self.column, self.problem)


def iter_json_batches(path: Path, lenient: bool = False, batch_size: int = 50_000) -> Iterator[ItemBatch]:
    """Batches of a JSON list (first non-blank character ``[``) or of a JSON Lines file (anything else). JSON
    Lines are read as bytes, so a line that is not valid UTF-8 is a malformed line like any other."""
    with open(path, "rb") as raw:
        head = raw.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    if not head.startswith(b"["):
        with open(path, "rb") as fh:
            yield from _line_batches(path, fh, lenient, batch_size)
        return
    with open(path, encoding="utf-8-sig") as fh:
        try:
            yield from _list_batches(path, fh, lenient, batch_size)
        except UnicodeDecodeError:
            raise _utf8_error(path) from None


def _utf8_error(path: Path) -> MalformedJSONError:
    """Where a file stops being UTF-8 (read again, as bytes, only when decoding it failed)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        return MalformedJSONError(path, line, column, f"invalid UTF-8 (byte 0x{data[err.start]:02x}); a JSON list "
                                  "must be valid UTF-8 throughout, even with lenient: true (re-encode the file)")
    raise AssertionError("the file decodes as UTF-8")


def _line_batches(path: Path, fh: BinaryIO, lenient: bool, batch_size: int) -> Iterator[ItemBatch]:
    batch = ItemBatch(0)
    loads = orjson.loads
    for line_no, line in enumerate(fh, start=1):
        if line_no == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        try:
            batch.values.append(loads(line))
        except orjson.JSONDecodeError:
            if not line.strip():
                continue
            text, column, problem = _line_error(line)
            if not lenient:
                raise MalformedJSONError(path, line_no, column, problem) from None
            batch.bad[len(batch.values)] = (text, f"line {line_no}, column {column}: {problem}")
            batch.values.append(None)
        batch.lines.append(line_no)
        if len(batch.values) == batch_size:
            yield batch
            batch = ItemBatch(batch.first_index + batch_size)
    if batch.values:
        yield batch


def _line_error(line: bytes) -> tuple[str, int, str]:
    """(the line as text, the column, what is wrong) for a line orjson rejected."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as err:
        column = len(line[: err.start].decode("utf-8", "replace")) + 1
        return (line.decode("utf-8", "replace").rstrip("\r\n"), column,
                f"invalid UTF-8 (byte 0x{line[err.start]:02x})")
    error = _parse_error(text)  # without the newline, a cut-off line reads as "unexpected end of data"
    return text, error.colno, error.msg


def _parse_error(text: str) -> orjson.JSONDecodeError:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return err
    raise AssertionError("text parses without the line ending")


class _ListScanner:
    """A sliding text buffer over the file that keeps line numbers and columns right across refills."""

    def __init__(self, path: Path, fh: TextIO) -> None:
        self.path, self.fh = path, fh
        self.buf = ""
        self.eof = False
        self.line = 1  # the line number at buf[counted_to]
        self.counted_to = 0
        self.line_offset = 0  # characters of buf[0]'s line that earlier refills dropped
        self.refill(0)

    def refill(self, keep_from: int) -> int:
        """Drop the text before ``keep_from``, append a block; return keep_from's index in the new buffer (0)."""
        self.line_at(keep_from)
        newline = self.buf.rfind("\n", 0, keep_from)
        self.line_offset = keep_from - newline - 1 if newline != -1 else self.line_offset + keep_from
        chunk = self.fh.read(BLOCK_CHARS)
        self.eof = len(chunk) < BLOCK_CHARS
        self.buf = self.buf[keep_from:] + chunk
        self.counted_to = 0
        return 0

    def line_at(self, pos: int) -> int:
        if pos > self.counted_to:
            self.line += self.buf.count("\n", self.counted_to, pos)
            self.counted_to = pos
        return self.line

    def column_at(self, pos: int) -> int:
        newline = self.buf.rfind("\n", 0, pos)
        return pos - newline if newline != -1 else pos + 1 + self.line_offset

    def indent_before(self, pos: int) -> str | None:
        """The white space from ``pos``'s line start to ``pos``, or None when anything else stands there."""
        newline = self.buf.rfind("\n", max(0, pos - MAX_INDENT), pos)
        if newline == -1 and (pos >= MAX_INDENT or self.line_offset):
            return None
        indent = self.buf[newline + 1:pos]
        return None if indent.strip(" \t") else indent

    def skip_ws(self, pos: int) -> int:
        while True:
            space = _WS.match(self.buf, pos)
            assert space is not None  # [ \t\n\r]* matches anywhere, if only the empty string
            pos = space.end()
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
        run = _decode_run(sc, pos)
        if run is not None:
            run_values, run_lines, end = run
            values.extend(run_values)
            lines.extend(run_lines)
        else:
            try:
                value, end = decode(buf, pos)
                start = pos
                if end == len(buf) and not sc.eof:  # a number cut by the block's end decodes, shortened
                    raise json.JSONDecodeError("element may go on in the next block", buf, end)
            except (json.JSONDecodeError, RecursionError):
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
            if _SURROGATE_ESCAPE.search(buf, start, end) and (lone := _lone_surrogate(value, buf, start, end)):
                if not lenient:
                    raise sc.error(lone[0], lone[1])
                line = sc.line_at(start) + buf.count("\n", start, lone[0])
                batch.bad[len(values)] = (buf[start:end], f"line {line}, column {sc.column_at(lone[0])}: {lone[1]}")
                value = None
            values.append(value)
            lines.append(sc.line_at(start))
        sep = after(buf, end)
        assert sep is not None  # _AFTER_ELEMENT matches anywhere: all of it is optional
        pos = sep.end()
        if pos >= len(buf) and not sc.eof:
            pos = sc.skip_ws(sc.refill(end))
            buf = sc.buf
            if pos < len(buf) and buf[pos] == ",":
                pos, after_comma = pos + 1, True
                continue
        elif sep.group(1):
            after_comma = True
            continue
        if pos < len(buf) and buf[pos] == "]":
            break
        if pos >= len(buf):
            raise sc.error(pos, "unexpected end of file: the list is not closed with ']'")
        raise sc.error(pos, f"expected ',' or ']' between list elements, found {buf[pos]!r}")
    if values:
        yield batch


def _decode_run(sc: _ListScanner, pos: int) -> tuple[list[Any], list[int], int] | None:
    """Parse the complete elements from ``pos`` up to a top-level cut near the buffer's end in one orjson call.

    A raw newline can only stand between tokens in JSON. In a pretty-printed list the line ``<indent>}`` (the
    indent of the element's own ``{`` line, then an optional comma) closes a top-level element, and the lines
    ``<indent>{`` open one; in a list written on one line, ``}, {`` may close one. Either cut is only a
    candidate: a span cut inside an element (or a string) leaves a bracket open and fails to parse, so a
    successful parse proves it. Anything unusual returns None and the caller decodes element by element.
    """
    buf = sc.buf
    if pos >= len(buf) or buf[pos] != "{":
        return None
    indent = sc.indent_before(pos)
    if indent is not None:
        closer = "\n" + indent + "}"
        cut = buf.rfind(closer, pos)
        end = cut + len(closer)
        line_end = buf.find("\n", end)
        if cut == -1 or line_end == -1 or buf[end:line_end].strip(" \t\r") not in ("", ","):
            return None
        values = _parse_span(buf, pos, end)
        if values is None:
            return None
        opener, starts = "\n" + indent + "{", [pos]
        found = buf.find(opener, pos, end)
        while found != -1:
            starts.append(found + 1)
            found = buf.find(opener, found + 1, end)
        if len(starts) != len(values):
            return None
        line, lines = sc.line_at(pos), []
        for previous, start in pairwise([pos, *starts]):
            line += buf.count("\n", previous, start)
            lines.append(line)
        sc.line_at(starts[-1])
        return values, lines, end
    limit = len(buf)
    for _ in range(RUN_ATTEMPTS):
        cut = max(buf.rfind("}, {", pos, limit), buf.rfind("},{", pos, limit))
        if cut == -1 or buf.find("\n", pos, cut) != -1:
            return None
        values = _parse_span(buf, pos, cut + 1)
        if values is not None:
            return values, [sc.line_at(pos)] * len(values), cut + 1
        limit = cut + 1  # the candidate was inside an element: try the one before it
    return None


def _lone_surrogate(value: Any, buf: str, start: int, end: int) -> tuple[int, str] | None:
    """(position, problem) of a lone surrogate escape ("\\ud800") in the element ``buf[start:end]``: the standard
    library decodes it into a string no UTF-8 writer takes; orjson (and so the JSON Lines reader) rejects it."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return None
    except UnicodeEncodeError:
        pass
    try:  # orjson's words and position, as for a JSON Lines line
        orjson.loads(buf[start:end])
    except orjson.JSONDecodeError as err:
        if "surrogate" in err.msg:
            return start + err.pos, err.msg
    escape = _SURROGATE_ESCAPE.search(buf, start, end)
    assert escape is not None  # the one caller asks only about an element that holds such an escape
    return escape.start(), "lone surrogate in string"


def _parse_span(buf: str, start: int, end: int) -> list[Any] | None:
    try:
        return orjson.loads("[" + buf[start:end] + "]")
    except orjson.JSONDecodeError:
        return None


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
        except RecursionError:  # orjson's limit is 1024 levels; this one, Python's recursion limit
            raise _BadElement(start, json.JSONDecodeError("depth limit exceeded", sc.buf, start)) from None
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
