"""The steps of a build as its progress reports name them, and what is told of them (``StageProgress``).

Steps, in order: ``READ``, the per-record stages run together per work unit (ingest, validate, normalize,
language, quality, PII); each stage of ``plan.STAGES`` by its name; ``REPORT``, the fates, the ledger and the
report; ``WRITE``, ``writer.write`` (called by the CLI's direct runner, or by the flow's write task). The direct
runner (``build.run``) and the flow (flows/build_flow.py, through flows/progress.py) tell a ``StageProgress`` when
each starts and ends; the CLI's display (``build_progress``) is one. Kept apart from ``build`` so the command line
can name the steps without importing the stages.
"""

from __future__ import annotations

from typing import Protocol

READ, REPORT, WRITE = "read + filter", "report", "write"


class StageProgress(Protocol):
    def started(self, step: str) -> None: ...

    def finished(self, step: str, records: int, kept: int) -> None:
        """``step`` went through ``records`` records and passed ``kept`` on."""


class _Silent:
    def started(self, step: str) -> None:
        pass

    def finished(self, step: str, records: int, kept: int) -> None:
        pass


SILENT: StageProgress = _Silent()
