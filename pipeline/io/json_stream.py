"""Stream the items of a JSON list or a JSON Lines file, one parsed value at a time.

Neither reader holds a second copy of the file: a JSON list is decoded element by element from a sliding text
buffer (the C scanner of the standard library, ``raw_decode``), JSON Lines line by line (orjson). Each item
keeps its own source text, so a rejected record can be quarantined exactly as it was written.

Malformed JSON raises ``MalformedJSONError`` with the file, line and column, unless the source is lenient: then
a trailing comma before ``]`` is accepted, and an element or line that cannot be parsed becomes an item with
``error`` set (its text is kept for the quarantine) and reading goes on with the next one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

BLOCK_CHARS = 1 << 18  # characters per read; 256K measured fastest (4M was ~30% slower: cache misses)
MAX_ELEMENT_CHARS = 1 << 26  # an element larger than this is malformed, not truncated by the block boundary
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class MalformedJSONError(ValueError):
    def __init__(self, path: Path, line: int, column: int, problem: str) -> None:
        self.path, self.line, self.column, self.problem = path, line, column, problem
        super().__init__(
            f"{path}: line {line}, column {column}: {problem}. Set 'lenient: true' on this source to keep its "
            "valid records and quarantine the rest."
        )


@dataclass(slots=True)
class RawItem:
    """One element of a source file: its parsed value, or the parse error (lenient mode only)."""

    index: int  # 0-based position among the file's items
    line: int  # 1-based line where the item starts
    value: Any
    text: str | None  # the item as written; None when the value came from a columnar file
    error: str | None = None

    def original(self) -> str:
        if self.text is not None:
            return self.text
        return orjson.dumps(self.value, default=str).decode()


def iter_json_items(path: Path, lenient: bool = False) -> Iterator[RawItem]:
    """Items of a JSON list (first non-blank character ``[``) or of a JSON Lines file (anything else)."""
    with open(path, encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        if head.startswith("["):
            yield from _iter_list(path, fh, lenient)
        else:
            yield from _iter_lines(path, fh, lenient)


def _iter_lines(path: Path, fh: TextIO, lenient: bool) -> Iterator[RawItem]:
    index = 0
    for line_no, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        text = line.rstrip("\r\n")
        try:
            yield RawItem(index, line_no, orjson.loads(text), text)
        except orjson.JSONDecodeError as err:
            if not lenient:
                raise MalformedJSONError(path, line_no, err.colno, err.msg) from None
            yield RawItem(index, line_no, None, text, f"line {line_no}, column {err.colno}: {err.msg}")
        index += 1


class _ListScanner:
    """A text buffer over the file that always starts at a line start, so columns can be computed locally."""

    def __init__(self, path: Path, fh: TextIO) -> None:
        self.path, self.fh = path, fh
        self.buf = ""
        self.eof = False
        self.line = 1  # line number at buf[counted_to]
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


_AFTER_ELEMENT = re.compile(r"[ \t\n\r]*(,?)[ \t\n\r]*")


def _iter_list(path: Path, fh: TextIO, lenient: bool) -> Iterator[RawItem]:
    """The hot loop decodes an element and skips the separator after it with one regex match; everything
    unusual (the list end, a trailing comma, a block boundary, a malformed element) takes the slow path."""
    sc = _ListScanner(path, fh)
    pos = sc.skip_ws(0) + 1  # past '['
    index = 0
    after_comma = False
    decode = _DECODER.raw_decode
    after = _AFTER_ELEMENT.match
    while True:
        buf = sc.buf
        try:
            value, end = decode(buf, pos)
            start = pos
        except json.JSONDecodeError:
            pos = sc.skip_ws(pos)
            buf = sc.buf
            if pos < len(buf) and buf[pos] == "]":
                if after_comma and not lenient:
                    raise sc.error(pos, "trailing comma before ']'") from None
                return
            if pos >= len(buf):
                raise sc.error(pos, "unexpected end of file: the list is not closed with ']'") from None
            try:
                value, start, end = _decode_element(sc, pos)
            except _BadElement as bad:
                if not lenient:
                    raise sc.error(bad.err.pos, bad.err.msg) from None
                problem = f"line {sc.line_at(bad.err.pos)}, column {sc.column_at(bad.err.pos)}: {bad.err.msg}"
                start, end = _skip_bad_element(sc, bad.start, bad.err.pos)
                text = sc.buf[start:end].rstrip().rstrip(",")
                yield RawItem(index, sc.line_at(start), None, text, problem)
                index, pos, after_comma = index + 1, end, False
                continue
            buf = sc.buf
        yield RawItem(index, sc.line_at(start), value, buf[start:end])
        index += 1
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
            return
        if pos >= len(buf):
            raise sc.error(pos, "unexpected end of file: the list is not closed with ']'")
        raise sc.error(pos, f"expected ',' or ']' between list elements, found {buf[pos]!r}")


def _decode_element(sc: _ListScanner, start: int) -> tuple[Any, int, int]:
    """Decode the element at ``start``, reading on while it may run past the buffer; return value, start, end."""
    while True:
        try:
            value, end = _DECODER.raw_decode(sc.buf, start)
            return value, start, end
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
