"""How large the build's values are, as Dask's memory manager counts them (``dask.sizeof``).

Why: a Dask worker spills the task results it stores to disk once their summed ``sizeof`` passes a share of its
memory limit, and restarts past 95% of it by RSS. Dask knows numpy, pandas and pyarrow, not polars: a polars
frame counted as 56 bytes however many records it holds, and so did every dataclass of arrays the partitioned
dedup stores on a worker (a partition's shingle sets, signatures, band entries). So a capped worker saw all of
it as "unmanaged memory", spilled nothing, and was restarted when its partitions filled it (the 3M build on 2 x
4 GB workers, issue #19).

Contract: importing this module registers ``sizeof`` for polars frames and series (``estimated_size``);
``register(*kinds)`` registers dataclasses as the sum of their fields' sizes (arrays, frames, nested
dataclasses registered the same way). Every module whose values Dask stores imports it (flows/dedup_parts.py,
flows/dask_runner.py), so a worker that unpickles a task's function has the sizes too.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import polars as pl
from dask.sizeof import sizeof


@sizeof.register(pl.DataFrame)
def _frame(frame: pl.DataFrame) -> int:
    return int(frame.estimated_size())


@sizeof.register(pl.Series)
def _series(series: pl.Series) -> int:
    return int(series.estimated_size())


def _fields(value: Any) -> int:
    return sys.getsizeof(value) + sum(int(sizeof(getattr(value, f.name))) for f in dataclasses.fields(value))


def register(*kinds: type) -> None:
    """Count each dataclass in ``kinds`` as the sum of its fields."""
    for kind in kinds:
        if not dataclasses.is_dataclass(kind):
            raise TypeError(f"{kind.__name__} is not a dataclass")
        sizeof.register(kind)(_fields)
