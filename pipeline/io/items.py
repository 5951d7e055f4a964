"""A batch of items read from one file: parsed values, their start lines, and the items that could not be parsed.

``ItemBatch.original`` gives an item back as JSON text for the quarantine, whatever its depth: orjson writes at
most 254 levels, and a value the readers hand on may be nested up to orjson's reading limit (1024 levels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


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
        return json_text(self.values[pos])


def json_text(value: Any) -> str:
    """``value`` as compact JSON text at any depth (orjson's, or ``_deep_dumps`` past its 254 levels)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return _deep_dumps(value)


def _deep_dumps(value: Any) -> str:
    """JSON text of a value nested at any depth, without recursion (orjson stops at 254 levels, json at ~1000)."""
    out: list[str] = []
    todo: list[tuple[bool, Any]] = [(False, value)]  # (is JSON text already, item)
    while todo:
        written, item = todo.pop()
        if not written and isinstance(item, (dict, list)):
            keyed = isinstance(item, dict)
            todo.append((True, "}" if keyed else "]"))
            pairs = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for k, (key, child) in reversed(list(enumerate(pairs))):
                key_text = orjson.dumps(str(key)).decode() + ":" if keyed else ""
                todo += [(False, child), (True, ("," if k else "") + key_text)]
            todo.append((True, "{" if keyed else "["))
        else:
            out.append(item if written else orjson.dumps(item, default=str).decode())
    return "".join(out)
