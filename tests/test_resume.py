"""Killing an audit mid-training leaves no version; running it again reuses the finished folds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from labelq.store import Store


def test_killed_audit_resumes_from_its_cache(tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "labelq.cli", "audit", "digits", "--store", str(store), "--no-prefect", "--model-param", "epochs=60", "--top", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    folds = store / "cache" / "folds"
    seen = []
    for line in proc.stdout:  # kill while fold 3 trains (60 epochs: seconds), when folds 1 and 2 are in the cache
        seen.append(line)
        if "fold 3/5: fitting" in line:
            break
    else:
        raise AssertionError("the audit ended before fold 3: " + "".join(seen))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(folds.glob("*.npz")))
    assert done == 2, "".join(seen)
    assert Store(store).versions("digits") == []  # nothing half-published

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    log = rerun.stdout + rerun.stderr
    assert log.count("reused from cache") == done
    assert log.count("fitting cnn") == 5 - done
    assert [v.tag for v in Store(store).versions("digits")] == ["v0001"]
