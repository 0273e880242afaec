"""A temporary Prefect API server that dies with the labelq process that started it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server of its own as a plain subprocess and
stops it at exit; a labelq killed with SIGKILL never reaches that exit, and the server runs on. The
commands that run flows use ``temporary_api()`` instead: the same server (Prefect's API app under
uvicorn, on 127.0.0.1), started by ``python -m labelq.flows.server PORT PARENT_PID``, which asks
Linux to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), however the parent dies.
On systems without ``prctl`` (macOS) the server stops at a normal exit only, as Prefect's does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent process dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(0)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def temporary_api() -> Iterator[str | None]:
    """Point Prefect at a temporary local server for the block, unless ``PREFECT_API_URL`` is set.

    Yields the API URL of the temporary server (None when an existing server is configured). The
    server is stopped when the block ends, and by the kernel if this process is killed.
    """
    import httpx
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, get_current_settings, temporary_settings

    if PREFECT_API_URL.value():
        yield None
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    print(f"Starting a temporary Prefect server on http://127.0.0.1:{port} (set PREFECT_API_URL to use your own)", file=sys.stderr)
    proc = subprocess.Popen([sys.executable, "-m", "labelq.flows.server", str(port), str(os.getpid())], env=env)
    try:
        deadline = time.monotonic() + PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        with httpx.Client() as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the temporary Prefect server exited with code {proc.returncode} while starting")
                try:
                    if client.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the temporary Prefect server did not answer on {url} in time (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
                time.sleep(0.1)
        with temporary_settings({PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drain_to_api()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drain_to_api(timeout: float = 30) -> None:
    """Send the logs and events Prefect still holds to the server before it stops: a log worker left
    with work after the server is gone retries for minutes at exit ("All connection attempts failed")."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


def main(argv: list[str]) -> None:
    port, parent = int(argv[0]), int(argv[1])
    die_with_parent(parent)
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port, log_level="error", lifespan="on")


if __name__ == "__main__":
    main(sys.argv[1:])
