"""Validate: check records against the record schema (``schemas.record``) and quarantine what fails.

Two checks, both stage ``validate``:
- ``check_types`` runs pydantic over a whole batch of adapter output before normalization (strict: an int is
  not a string); reasons ``missing_field:<field>`` and ``wrong_type:<field>``, the detail names every
  problem of the record by field path, never its value.
- ``check_content`` runs after normalization on the frame: a required text field left empty is
  ``empty_<field>`` (e.g. ``empty_output``), an empty side of a history turn is ``empty_history_turn``.
Passing records become a typed polars frame (``records_frame``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import polars as pl
from pydantic import ValidationError

from pipeline.stage import Outcome, first_rule, kept_all, split_off
from schemas.record import RECORD_BATCH, REQUIRED_TEXT_FIELDS, TEXT_FIELDS

STAGE = "validate"

# pydantic error types -> our reason prefix; anything else is "invalid".
ERROR_REASONS: dict[str, str] = {
    "missing": "missing_field",
    "string_type": "wrong_type",
    "list_type": "wrong_type",
    "dict_type": "wrong_type",
    "typed_dict_type": "wrong_type",
    "none_required": "wrong_type",
}

HISTORY = pl.List(pl.Struct({"user": pl.String(), "assistant": pl.String()}))
FRAME_COLUMNS = ("instruction", "input", "output", "system", "history", "_pos", "_sub")


def check_types(records: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """Index -> (reason, detail) of every record that fails the schema; the detail lists all its problems."""
    try:
        RECORD_BATCH.validate_python(records)
        return {}
    except ValidationError as err:
        problems: dict[int, list[Mapping[str, Any]]] = {}
        for e in err.errors(include_url=False, include_input=False):
            problems.setdefault(int(e["loc"][0]), []).append(e)
    return {i: _explain(records[i], errors) for i, errors in sorted(problems.items())}


def _explain(record: dict[str, Any], errors: list[Mapping[str, Any]]) -> tuple[str, str]:
    first = errors[0]
    field = str(first["loc"][1]) if len(first["loc"]) > 1 else "record"
    details = []
    for e in errors:
        path = ".".join(str(p) for p in e["loc"][1:]) or "record"
        got = "" if e["type"] == "missing" else f" (got {_type_name(_at(record, e['loc'][1:]))})"
        details.append(f"{path}: {e['msg']}{got}")
    return f"{ERROR_REASONS.get(first['type'], 'invalid')}:{field}", "; ".join(details)


def fill_missing_input(frame: pl.DataFrame, required: bool) -> Outcome:
    """Records whose row had no ``input`` get ""; with ``validate.require_input_key`` they are rejected instead.
    Stats: how many were filled."""
    missing = pl.col("input").is_null()
    n_missing = frame.select(missing.sum()).item()
    if not required:
        return kept_all(frame.with_columns(pl.col("input").fill_null("")), n_missing)
    rejected = frame.filter(missing).select(
        "id", "source", pl.lit(STAGE).alias("stage"), pl.lit("missing_field:input").alias("reason"),
        pl.lit("input: Field required (validate.require_input_key is on)").alias("detail"), "origin",
    )
    return split_off(frame, rejected, 0)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return value
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def records_frame(records: list[dict[str, Any]], positions: list[int], subs: list[int | None],
                  skip: Collection[int] = (), may_have_history: bool = True) -> pl.DataFrame:
    """Schema-valid records as a typed frame, in the order given, leaving out the indices in ``skip``."""
    if skip:
        keep = [i for i in range(len(records)) if i not in skip]
        records, positions, subs = [records[i] for i in keep], [positions[i] for i in keep], [subs[i] for i in keep]
    frame = pl.DataFrame(
        {name: [r.get(name) for r in records] for name in TEXT_FIELDS} | {"_pos": positions, "_sub": subs},
        schema={name: pl.String() for name in TEXT_FIELDS} | {"_pos": pl.Int64(), "_sub": pl.Int64()},
    )
    history = _history_column(records) if may_have_history else _no_history(len(records))
    return frame.with_columns(history).select(FRAME_COLUMNS)


def _no_history(n: int) -> pl.Series:
    return pl.Series("history", [None] * n, dtype=HISTORY).fill_null(pl.lit([], dtype=HISTORY))


def _history_column(records: list[dict[str, Any]]) -> pl.Series:
    """Built from one flat frame of turns: polars' constructor makes a Series per nested list, which costs
    ~50 us a record when every record has history (measured on 50k two-turn records: 0.08 s against 2.5 s)."""
    rows, users, assistants = [], [], []
    for i, record in enumerate(records):
        for turn in record.get("history") or ():
            rows.append(i)
            users.append(turn["user"])
            assistants.append(turn["assistant"])
    if not rows:
        return _no_history(len(records))
    turns = pl.DataFrame({"_row": rows, "user": users, "assistant": assistants},
                         schema={"_row": pl.UInt32(), "user": pl.String(), "assistant": pl.String()})
    grouped = turns.group_by("_row", maintain_order=True).agg(pl.struct("user", "assistant").alias("history"))
    every_row = pl.DataFrame({"_row": pl.arange(0, len(records), dtype=pl.UInt32, eager=True)})
    joined = every_row.join(grouped, on="_row", how="left", maintain_order="left")
    return joined["history"].fill_null(pl.lit([], dtype=HISTORY))


def content_rules() -> list[tuple[str, pl.Expr]]:
    """(reason, condition) pairs, checked in order; the first that holds is the record's reason."""
    rules = [(f"empty_{f}", pl.col(f).str.len_bytes() == 0) for f in REQUIRED_TEXT_FIELDS]
    empty_turn = pl.col("history").list.eval(
        (pl.element().struct.field("user").str.len_bytes() == 0)
        | (pl.element().struct.field("assistant").str.len_bytes() == 0)
    ).list.any()
    rules.append(("empty_history_turn", empty_turn.fill_null(False)))
    return rules


def check_content(frame: pl.DataFrame) -> Outcome:
    """Normalized, identified records: kept, or rejected under the first content rule they break."""
    flagged = frame.with_columns(first_rule(content_rules()).alias("_reason"))
    rejected = flagged.filter(pl.col("_reason").is_not_null()).select(
        "id", "source", pl.lit(STAGE).alias("stage"), pl.col("_reason").alias("reason"),
        pl.format("{} is empty after normalization", pl.col("_reason").str.strip_prefix("empty_")).alias("detail"),
        "origin",
    )
    return Outcome(flagged.filter(pl.col("_reason").is_null()).drop("_reason"), rejected)
