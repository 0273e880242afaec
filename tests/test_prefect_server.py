"""The temporary Prefect server of a Prefect-mode command dies with the command, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _children(parent: int, marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and marker in cmdline:
            found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_audit_takes_its_temporary_server_with_it(tmp_path):
    env = {**os.environ}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "labelq.cli", "audit", "digits", "--store", str(tmp_path / "s"), "--folds", "3"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while not servers and time.monotonic() < deadline and proc.poll() is None:
            servers = _children(proc.pid, "labelq.flows.server")
            time.sleep(0.2)
        assert servers, "the audit started no temporary server"
        server = servers[0]
        time.sleep(2)  # let it get going
        assert _alive(server)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server), "the temporary Prefect server outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
