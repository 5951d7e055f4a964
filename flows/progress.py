"""Where the CLI hangs its progress callbacks for a flow run: ``hook`` is called once per finished shard as
(source, its records, True); ``stages`` is told when each step of the build starts and ends (steps.StageProgress:
read + filter, each global stage, report, write). Both are None outside the CLI (``pipeline serve``, the UI).

It lives apart from flows/build_flow.py because task functions are pickled by value for Dask workers together
with the globals of their module; a callback holding the terminal's progress bar (locks) cannot be pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.steps import StageProgress

hook: Callable[[str, int, bool], None] | None = None
stages: StageProgress | None = None
