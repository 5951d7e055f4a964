"""What ``pipeline build`` (and ``validate``) shows while it runs: a live line for the step running (a bar over
the work units while reading, a spinner and the time after), and, as each step ends, a line that stays:

    read + filter        310 records   1.21 s         256 records/s  -> 298
    dedup                298 records   0.05 s       5,960 records/s  -> 289

Steps (pipeline/steps.py): ``read + filter``, each global stage of ``plan.STAGES``, ``report`` and ``write``. The
per-record stages (ingest, validation, normalization, language, quality, PII) are one step: they run one after
the other inside each work unit, in worker processes (or Prefect tasks), so the time of one of them is not seen
here without a clock call per record batch and stage in every worker and a channel back; the bar moves per unit.

Contract: ``display(units)`` is a context manager yielding a ``Display`` (a ``steps.StageProgress`` whose ``unit``
is the reading callback); under ``--quiet`` (``terminal.quiet``) it shows nothing, and where stderr is not a
terminal (a log, CI) only the lines of the finished steps. Steps may repeat a name or be left out (an unchanged
output has none); the numbers are what the runner reports, the times are measured here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pipeline import terminal
from pipeline.steps import READ


class Display:
    """Reports from a build: the step running on ``bar`` (None: not shown), the finished ones as lines on
    ``console`` (None: not shown)."""

    def __init__(self, bar: Progress | None, console: Console | None, units: int) -> None:
        self.bar, self.console, self.units, self.records, self.done = bar, console, units, 0, 0
        self.task = bar.add_task("starting", total=None, count="") if bar is not None else None
        self.since = time.perf_counter()

    def unit(self, source: str, records: int, unit_done: bool) -> None:
        """A work unit (or part of one) was read: the io/workers callback, and the flow's per shard."""
        self.records += records
        self.done += unit_done
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, advance=1 if unit_done else 0, count=f"{self.done}/{self.units} units",
                            description=f"{READ}: {source}, {self.records:,} records")

    def started(self, step: str) -> None:
        self.since = time.perf_counter()
        if self.bar is not None and self.task is not None:
            reading = step == READ
            self.records, self.done = (0, 0) if reading else (self.records, self.done)
            self.bar.reset(self.task, total=self.units if reading else None, description=step,
                           count=f"0/{self.units} units" if reading else "")

    def finished(self, step: str, records: int, kept: int) -> None:
        if self.console is not None:  # above the live bar, where there is one
            self.console.print(line(step, records, kept, time.perf_counter() - self.since), highlight=False,
                               soft_wrap=True)


def line(step: str, records: int, kept: int, seconds: float) -> str:
    """One finished step: records, seconds, records/s (not for a step under 5 ms: a rate of nothing done), and what
    it passed on when that differs."""
    rate = f"{records / seconds:>12,.0f} records/s" if seconds >= 0.005 else " " * 22
    passed = f"  -> {kept:,}" if kept != records else ""
    return f"{step:<15} {records:>12,} records {seconds:>7.2f} s {rate}{passed}".rstrip()


@contextmanager
def display(units: int) -> Iterator[Display]:
    console = terminal.console
    if terminal.quiet or not console.is_terminal:  # rich's live display would end with an empty line there
        yield Display(None, None if terminal.quiet else console, units)
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        yield Display(bar, console, units)
