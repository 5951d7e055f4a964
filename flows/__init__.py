"""Prefect flows wrapping the pipeline's stages: orchestration only (caching, retries, schedules, task runners).

Importing this package points Prefect at the project's state folder before Prefect itself is imported: its home
(database, settings, cached task results) goes to ``$INSTRUCT_PIPELINE_STATE/prefect`` (default ``./.state``),
telemetry is off (no network here), Prefect's console log shows warnings only (its INFO lines
still reach the server and the UI; ``pipeline -v`` shows them), and the temporary server Prefect starts when no
PREFECT_API_URL is set gets
time to run its first database migration on a slow machine. Variables already set by the user win.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

STATE_ENV = "INSTRUCT_PIPELINE_STATE"


def state_folder() -> Path:
    return Path(os.environ.get(STATE_ENV, ".state")).resolve()


def dask_worker() -> Any:
    """The Dask worker this code runs on (in one of its tasks), or None (the local runner never imports Dask)."""
    if "distributed" not in sys.modules:
        return None
    import distributed

    try:
        return distributed.get_worker()
    except ValueError:
        return None


def configure_prefect() -> None:
    home = Path(os.environ.get("PREFECT_HOME") or state_folder() / "prefect")
    home.mkdir(parents=True, exist_ok=True)  # its SQLite database cannot be created in a missing folder
    for name, value in {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",  # the terminal has its progress bar; the API gets INFO
    }.items():
        os.environ.setdefault(name, value)


configure_prefect()
