"""A local Prefect server as a child process (``prefect server start``), for tests and benchmarks.

In production run ``prefect server start`` yourself and set PREFECT_API_URL (see the README); this module only
starts one on 127.0.0.1 with its database in a given folder, waits until it answers, and stops it by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_S = 240  # the first start migrates a new database: minutes on a slow machine


@dataclass
class LocalServer:
    process: subprocess.Popen[bytes]
    api_url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn and its services), SIGKILL after 30 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(home: Path, port: int | None = None) -> LocalServer:
    """Start a server whose PREFECT_HOME (and SQLite database) is ``home``; return once /api/health answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
                                    "127.0.0.1", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LocalServer(process, f"http://127.0.0.1:{port}/api", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the Prefect server did not answer in {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


WATCHDOG = """
import os, sys, time
import psutil

parent, known = psutil.Process(int(sys.argv[1])), {}
try:
    while parent.is_running():
        known.update((c.pid, c) for c in parent.children(recursive=True) if c.pid != os.getpid())
        time.sleep(0.2)
except psutil.NoSuchProcess:
    pass
left = [c for c in known.values() if c.is_running()]  # is_running also compares start times: no reused PID
for child in left:
    child.terminate()
for child in psutil.wait_procs(left, timeout=2)[1]:
    child.kill()
"""


@contextmanager
def children_die_with_this_process() -> Iterator[None]:
    """While inside, a watchdog (its own session, so Ctrl-C in the terminal does not reach it) notes the
    processes this one starts (the temporary Prefect server, Dask workers) and stops those still running when
    this process is gone, even after ``kill -9``, which no exit handler of this process sees."""
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid())], start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


def api_url() -> str | None:
    """The Prefect server this process talks to (PREFECT_API_URL, from the environment or Prefect's profile);
    None when Prefect would start a temporary one, which has no scheduler."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def stop_serving(deployment: str, message: str) -> None:
    """Pause ``deployment`` (``flow/name``) and mark its runs that the server still has as Pending or Running as
    Crashed, with ``message``: ``pipeline serve`` killed their processes (Ctrl-C, SIGTERM), which Prefect's runner
    does not report (it pauses the deployment itself on Ctrl-C, not always in time on SIGTERM)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        served = client.read_deployment_by_name(deployment)
        client.pause_deployment(served.id)
        running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.PENDING, StateType.RUNNING])))
        for run in client.read_flow_runs(flow_run_filter=running,
                                         deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[served.id]))):
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)


def start_temporary_quietly() -> None:
    """Start, now, the temporary server Prefect starts when no PREFECT_API_URL is set, with its output sent to
    /dev/null: it shares the terminal's process group, so Ctrl-C reaches it too, and it printed "Aborted!" (and
    shutdown noise) after the build's one line. A configured server is left alone."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return
    saved = [os.dup(fd) for fd in (1, 2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(devnull, fd)
        SubprocessASGIServer().start()  # the instance Prefect's clients use (one per process)
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
