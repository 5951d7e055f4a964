"""What changed between two versions of a scheduled build (``pipeline.versions.changes``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class ChangeCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    KINDS: ClassVar[tuple[str, ...]] = ("added", "removed", "changed", "unchanged")

    key: str = Field(description="a source or a task")
    added: int
    removed: int
    changed: int = Field(description="same id, different instruction / input / output / system / history")
    unchanged: int


class ChangeReport(BaseModel):
    """This version's records (train and eval, repeats once) against the previous version's, by record id."""

    model_config = ConfigDict(extra="forbid")
    previous: str | None = Field(description="the previous version's folder name; None for the first version")
    added: int
    removed: int
    changed: int
    unchanged: int
    by_source: list[ChangeCounts]
    by_task: list[ChangeCounts]
