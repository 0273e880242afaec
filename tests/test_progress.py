"""Long work shows progress: bars on a person's terminal (a real pseudo-terminal here), plain log lines elsewhere."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios

from labelq import progress as P

AUDIT = ["-m", "labelq.cli", "audit", "digits", "--no-prefect", "--folds", "2", "--model-param", "epochs=2"]


def _in_a_terminal(args: list[str], env: dict) -> tuple[int, str]:
    """Run ``args`` with its standard streams on a pseudo-terminal of 120 x 40 characters; (exit code, what it printed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True, env=env)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(60), out.decode(errors="replace")


def test_an_audit_at_a_terminal_draws_bars_and_in_a_pipe_logs_lines(tmp_path):
    env = {**os.environ, "LABELQ_STORE": str(tmp_path / "store")}
    code, shown = _in_a_terminal([sys.executable, *AUDIT], env)
    assert code == 0, shown[-2000:]
    assert "images/s]" in shown and "cnn, 2 epochs:" in shown and "steps/s]" in shown  # tqdm's bars: the epochs' images, the folds
    assert "cnn epoch 2/2" in shown and "Published digits" in shown  # the log lines print above the bars
    piped = subprocess.run([sys.executable, *AUDIT], env={**env, "LABELQ_STORE": str(tmp_path / "other")}, capture_output=True, text=True)
    assert piped.returncode == 0 and "cnn epoch 2/2" in piped.stderr + piped.stdout
    assert "images/s]" not in piped.stderr + piped.stdout  # no bar where no person looks


def test_without_bars_long_work_logs_plain_lines(caplog, monkeypatch):
    monkeypatch.setattr(P, "LOG_EVERY", 0.0)
    caplog.set_level(logging.INFO, logger="labelq.test")
    with P.progress(3, "nearest neighbours", logger=logging.getLogger("labelq.test")) as bar:
        assert bar.bar is None  # bars are off unless the command line turns them on at a terminal
        bar.update(2)
        bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("nearest neighbours: 2/3 rows (") and "s left)" in lines[0]
    assert lines[-1].startswith("nearest neighbours: 3/3 rows (") and "in " in lines[-1]
    assert not P.enable_bars()  # pytest's standard error is no terminal
