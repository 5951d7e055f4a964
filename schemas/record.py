"""The canonical instruction record and the shape a format adapter must produce.

A record is one supervised example in the Alpaca layout that LLaMA-Factory and most SFT tools share:
``instruction`` (+ optional ``input``) is the prompt, ``output`` the answer, ``system`` an optional system
prompt and ``history`` the earlier (user, assistant) turns of a multi-turn chat. Multi-turn chats map to it the
way LLaMA-Factory maps them: the last user turn is the instruction, the last assistant turn the output, and
every earlier pair is history.

The field shapes are TypedDicts so pydantic-core validates a whole batch of records in one call (about 8x
faster than a BaseModel per record); the strict config means an int ``output`` is an error, not "42".
"""

from __future__ import annotations

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import NotRequired, TypedDict

STRICT = ConfigDict(strict=True, extra="ignore")


@with_config(STRICT)
class Turn(TypedDict):
    """One earlier exchange of a multi-turn chat."""

    user: str
    assistant: str


@with_config(STRICT)
class RecordFields(TypedDict):
    """What a format adapter yields for one record, before normalization: types are checked, content is not."""

    instruction: str
    input: NotRequired[str]
    output: str
    system: NotRequired[str | None]
    history: NotRequired[list[Turn]]


# After normalization these fields must hold at least one character; an empty one is a reject reason
# ``empty_<field>`` (``empty_output``, ``empty_instruction``).
REQUIRED_TEXT_FIELDS: tuple[str, ...] = ("instruction", "output")

# The text columns of a record, in output order.
TEXT_FIELDS: tuple[str, ...] = ("instruction", "input", "output", "system")

RECORD_BATCH = TypeAdapter(list[RecordFields])
