"""The terminal of the ``pipeline`` command: one console on stderr, and what ``--quiet`` / ``--verbose`` let through.

Contract: every command prints through ``console``. ``error`` (one line, ``error: ...``) and ``result`` (the
command's final line) always print; ``say`` (tables, notes, warnings) and the progress displays print unless
``quiet``. ``configure(verbose, quiet)`` is called once by the global options: it sets ``quiet`` and the level of
logging (INFO, WARNING, or ERROR when quiet), Prefect's console level, and under ``--quiet`` turns Python's
warnings and the libraries' progress bars (tqdm, used by transformers and ``pipeline train``) off.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

console = Console(stderr=True)
if not console.is_terminal:
    console.width = 120  # logs and CI: rich would otherwise wrap at 80

quiet = False  # set by configure(); read by the commands and the progress displays
# logs as lines on the console; its level filters what other loggers pass up (Prefect's INFO lines of each task)
handler = RichHandler(console=console, show_path=False)

# (verbose, quiet) -> logging level here and Prefect's console level (None: flows/__init__.py's WARNING, or the
# flow runner's CRITICAL: a failed build prints its own one-line error)
LEVELS = {(True, False): (logging.INFO, "INFO"), (False, False): (logging.WARNING, None),
          (False, True): (logging.ERROR, "CRITICAL")}


def configure(verbose: bool, be_quiet: bool) -> Callable[[], None]:
    """Apply the global options; returns what undoes them (the command's context calls it when the command ends,
    so commands run in one process, as the tests do, do not inherit each other's settings)."""
    global quiet
    level, prefect_level = LEVELS[(verbose, be_quiet)]
    variables = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": prefect_level} if prefect_level else {}
    if be_quiet:
        variables |= {"TQDM_DISABLE": "1",  # tqdm >= 4.66 reads its defaults from TQDM_* variables
                      "TRANSFORMERS_VERBOSITY": "error",
                      "PYTHONWARNINGS": "ignore"}  # the processes a command starts (workers, flow runs)
    added = [name for name in variables if name not in os.environ]  # a variable the user set wins
    os.environ.update({name: variables[name] for name in added})
    filters = warnings.catch_warnings()
    filters.__enter__()
    if be_quiet:
        warnings.simplefilter("ignore")
    root = logging.getLogger()
    previous, quiet = (root.level, handler.level), be_quiet
    logging.basicConfig(format="%(message)s", handlers=[handler])  # unless the root logger has handlers already
    root.setLevel(level)
    handler.setLevel(level)

    def undo() -> None:
        global quiet
        quiet = False
        root.setLevel(previous[0])
        handler.setLevel(previous[1])
        filters.__exit__(None, None, None)
        for name in added:
            os.environ.pop(name, None)

    return undo


def error(message: str) -> None:
    console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True, highlight=False)


def result(message: str) -> None:
    """The command's final line: printed under --quiet too."""
    console.print(message, soft_wrap=True, highlight=False)


def say(*renderables: Any, markup: bool = True) -> None:
    """Tables, notes and warnings: not under --quiet."""
    if not quiet:
        lines = all(isinstance(r, str) for r in renderables)  # a line is never wrapped; a table fits the width
        console.print(*renderables, soft_wrap=lines, highlight=False, markup=markup)
