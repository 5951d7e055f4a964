"""Stopping a build on Ctrl-C or SIGTERM: at once, with one line, exit 130, and nothing left running.

Contract: inside ``on_signals(target)``, SIGINT and SIGTERM print one line, stop every process this one
started (``stop_children``), remove this process's temporary output folder beside ``target`` and end the process
with status 130. Leaving the block restores the previous handlers.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pipeline.io import output_folder


@contextmanager
def on_signals(target: Path) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM stop a build at once, with one line and exit 130: the processes this one
    started (workers, Dask, the temporary Prefect server) are stopped, this process's temporary output folder
    is removed, and the previous output stays as it was. Nothing waits for running stages to notice (Prefect's
    and Dask's own shutdown took minutes); what a stage left half-written (a stage folder, a temporary output
    elsewhere) is cleared by the next build of the same name, and its lock goes with this process.

    Python runs a signal handler only between bytecodes of the main thread, which can sit seconds in one
    fastText or tokenizer call; so the C-level handler's wakeup byte (``signal.set_wakeup_fd``) wakes a
    thread that stops the build from there."""
    terminal = os.dup(2)  # stderr as it is now: fd 2 may point elsewhere for a while (the server's start)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: None) for s in signals}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while data := reader.recv(1):
            if data[0] in signals:
                # straight to the file descriptor: a live progress display would hold a console.print back
                os.write(terminal, f"\ninterrupted ({signal.Signals(data[0]).name}): build stopped; {target} is as it "
                            "was\n".encode())
                _silence()  # what threads still log while the children stop is noise after that line
                stop_children()
                shutil.rmtree(output_folder.temporary(target), ignore_errors=True)
                os._exit(130)

    watcher = threading.Thread(target=watch, name="stop-on-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)
        writer.close()  # ends the watcher: its recv returns b""
        watcher.join()
        reader.close()
        os.close(terminal)


def stop_children(grace_s: float = 0.5) -> None:
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        with suppress(psutil.Error):
            child.kill()


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
