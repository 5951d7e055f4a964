"""Stopping a command on Ctrl-C or SIGTERM: at once, with one line, exit 130, nothing left running or half-written.

Contract: inside ``on_signals(message, cleanup)``, SIGINT and SIGTERM write ``interrupted (SIGINT): <message>`` to
the terminal, stop every process this one started (``stop_children``), call ``cleanup`` with their PIDs (it removes
what they and this process were writing) and end the process with status 130. With ``main_grace_s`` (``serve``:
Prefect's runner pauses its schedule as it shuts down), SIGINT also raises KeyboardInterrupt in the main thread,
and the process ends that long after the signal unless the main thread has left the block (``Interrupt.signal``
then says that the command must exit 130). Leaving the block restores the previous handlers.

``building(target)`` is that for a build: its temporary output folder beside ``target`` is removed.
``serving(target, report)`` is that for ``pipeline serve``: the flow runs it started are killed at once (left to
Prefect, each finished the stage its threads were running first: 22 s measured), the temporary output folders
they were writing beside ``target`` and inside it (a version) are removed, ``report`` marks them on the server,
and Prefect's runner pauses the deployment; both within ``SERVE_GRACE_S`` of the signal.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_STATUS = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C
SERVE_GRACE_S = 0.8  # for Prefect's runner to pause the served deployment (one request) before the exit
PARK_WAIT_S = 0.3  # for the main thread to leave a C call and park before the cleanup


@dataclass
class Interrupt:
    """What ``on_signals`` yields: the signal that arrived (None while none has)."""

    signal: signal.Signals | None = None


def building(target: Path) -> AbstractContextManager[Interrupt]:
    """A build: stopped at once; its temporary output folder is removed, the previous output stays as it was."""
    from pipeline.io import output_folder

    return on_signals(f"build stopped; {target} is as it was",
                      lambda pids: shutil.rmtree(output_folder.temporary(target), ignore_errors=True))


def serving(target: Path, report: Callable[[], None] = lambda: None) -> AbstractContextManager[Interrupt]:
    """``pipeline serve``: see the module's contract. ``report`` (given at most ``SERVE_GRACE_S``) tells the server
    that serving stopped and the runs it was making are over: Prefect's runner does not, for processes killed
    under it."""

    def cleanup(pids: list[int]) -> None:
        for pid in pids:
            for folder in (target.parent, target):
                for tmp in folder.glob(f".*.tmp-{pid}"):
                    shutil.rmtree(tmp, ignore_errors=True)
        reporting = threading.Thread(target=report, name="report-stopped-runs", daemon=True)
        reporting.start()
        reporting.join(SERVE_GRACE_S * 0.75)  # the watcher then waits for the runner up to SERVE_GRACE_S in all

    return on_signals(f"serving stopped, with any build it was running; {target} is as it was", cleanup, grace_s=0,
                      main_grace_s=SERVE_GRACE_S)


@contextmanager
def on_signals(message: str, cleanup: Callable[[list[int]], None] = lambda pids: None, grace_s: float = 0.5,
               main_grace_s: float = 0.0) -> Iterator[Interrupt]:
    """SIGINT and SIGTERM stop the command at once (see the module's contract). Nothing waits for running work to
    notice (Prefect's and Dask's own shutdown took minutes, a training step seconds); ``grace_s`` is how long the
    started processes get between SIGTERM and SIGKILL.

    Python runs a signal handler only between bytecodes of the main thread, which can sit seconds in one
    fastText, tokenizer or torch call; so the C-level handler's wakeup byte (``signal.set_wakeup_fd``) wakes a
    thread that stops the command from there. Without ``main_grace_s`` the main thread's own handler parks it (it
    blocks until the process ends), and the cleanup waits up to ``PARK_WAIT_S`` for that: a main thread still
    writing (a checkpoint, the output folder) would otherwise recreate what the cleanup removes."""
    terminal = os.dup(2)  # stderr as it is now: fd 2 may point elsewhere for a while (the server's start)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    state, left, parked = Interrupt(), threading.Event(), threading.Event()

    def park(signum: int, frame: FrameType | None) -> None:
        parked.set()
        threading.Event().wait()  # until the watcher ends the process

    # with main_grace_s, SIGINT's Python-level handler stays the default (KeyboardInterrupt), which asyncio.run
    # replaces by its own: the served runner's task is cancelled and shuts down as on a plain Ctrl-C
    handlers = {signal.SIGINT: signal.default_int_handler if main_grace_s else park,
                signal.SIGTERM: _ignore if main_grace_s else park}
    previous = {s: signal.signal(s, handlers[s]) for s in SIGNALS}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while data := reader.recv(1):
            if data[0] in SIGNALS:
                state.signal = signal.Signals(data[0])
                # straight to the file descriptor: a live progress display would hold a console.print back (and
                # has hidden the cursor, which nothing else would show again)
                cursor = "\x1b[?25h" if os.isatty(terminal) else ""
                os.write(terminal, f"{cursor}\ninterrupted ({state.signal.name}): {message}\n".encode())
                _silence()  # what threads and children still log while they stop is noise after that line
                deadline = time.monotonic() + main_grace_s
                try:
                    stopped = stop_children(grace_s)
                    if not main_grace_s:
                        parked.wait(PARK_WAIT_S)
                    cleanup(stopped)
                finally:
                    if not left.wait(max(deadline - time.monotonic(), 0)):
                        os._exit(EXIT_STATUS)
                return

    watcher = threading.Thread(target=watch, name="stop-on-signals", daemon=True)
    watcher.start()
    try:
        yield state
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        left.set()
        writer.close()  # ends a waiting watcher (its recv returns b""); one that is cleaning up finishes first
        watcher.join()
        reader.close()
        os.close(terminal)


def stop_children(grace_s: float = 0.5) -> list[int]:
    """SIGTERM to every process this one started (recursively), SIGKILL to those alive ``grace_s`` later (at once
    with 0); returns their PIDs."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.Error):
            child.kill() if grace_s <= 0 else child.terminate()
    _, alive = psutil.wait_procs(children, timeout=max(grace_s, 0.05))
    for child in alive:
        with suppress(psutil.Error):
            child.kill()
    return [child.pid for child in children]


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
