"""Killing an audit mid-training leaves no version; running it again reuses the finished folds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from labelq.store import Store


def test_killed_audit_resumes_from_its_cache(tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "labelq.cli", "audit", "digits", "--store", str(store), "--no-prefect", "--model-param", "epochs=60", "--top", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    folds = store / "cache" / "folds"
    deadline = time.time() + 300
    while time.time() < deadline and not (folds.exists() and len(list(folds.glob("*.npz"))) >= 2):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(folds.glob("*.npz")))
    assert 2 <= done < 5, "the audit should have been killed mid-way"
    assert Store(store).versions("digits") == []  # nothing half-published

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    log = rerun.stdout + rerun.stderr
    assert log.count("reused from cache") == done
    assert log.count("fitting cnn") == 5 - done
    assert [v.tag for v in Store(store).versions("digits")] == ["v0001"]
