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
import os, signal, sys, time
parent, server = int(sys.argv[1]), int(sys.argv[2])

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

while os.getppid() == parent and alive(server):
    time.sleep(0.2)
if alive(server):
    os.kill(server, signal.SIGTERM)
    for _ in range(50):
        time.sleep(0.1)
        if not alive(server):
            break
    else:
        os.kill(server, signal.SIGKILL)
"""


def tie_temporary_server() -> int | None:
    """When no PREFECT_API_URL is set, start the temporary server Prefect would start for the flow, now, and
    tie its life to this process: a watchdog (its own session, so Ctrl-C in the terminal does not reach it)
    stops the server when this process is gone, even after ``kill -9``, which Prefect's own exit handler never
    sees. Returns the server's PID (None: a server was configured)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return None
    temporary = SubprocessASGIServer()  # the instance Prefect's client uses: started once per process
    temporary.start()
    assert temporary.server_process is not None
    pid = temporary.server_process.pid
    subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(pid)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return pid
