"""Scheduled audits against a real local Prefect server and a real process worker, both started here on
127.0.0.1 and stopped at the end: register, run on schedule, history row, list, remove, worker killed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labelq.history import read_history
from labelq.offline import PREFECT
from labelq.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME; yields the env that points at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        **PREFECT,
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "PREFECT_API_URL": ""},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def healthy():
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            return False

    try:
        _wait(healthy, 180, "the Prefect server to start")
        yield env
    finally:
        _stop(proc)
        log.close()


def _labelq(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "labelq.cli", *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _worker(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "a")
    return subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "labelq", "--type", "process", "--limit", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _flow_run(env: dict, run_id: str) -> dict:
    with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/flow_runs/{run_id}", timeout=10) as r:
        return json.load(r)


def _task_run(env: dict, run_id: str) -> dict:
    with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/task_runs/{run_id}", timeout=10) as r:
        return json.load(r)


def test_a_scheduled_audit_runs_on_schedule_and_records_its_history(prefect_server, tmp_path):
    """Each run of this schedule trains its folds on a local Dask cluster of 2 processes (a subflow)."""
    env, store = prefect_server, tmp_path / "store"
    out = _labelq(
        env, "schedule", "digits-nightly", "digits", "--store", str(store), "--model", "logreg", "--interval", "20", "--jobs", "2", "--cluster", "local"
    )
    assert "Scheduled labelq-audit/digits-nightly: every 20s" in out.stdout and "dask local x2" in out.stdout
    listed = _labelq(env, "schedule", "--list").stdout
    assert "digits-nightly" in listed and str(store.resolve())[:30] in listed and "every 20s" in listed

    worker = _worker(env, tmp_path / "worker.log")
    try:
        rows = _wait(lambda: read_history(Store(store), "digits-nightly"), 300, "a scheduled run's history row", every=2)
        row = rows[0]
        assert row.flow_run_id and row.rows == 1797 and row.status == "ok"
        # The record names the audit's run: a subflow of the deployment's run, which ends after the Dask
        # cluster is shut down. Both must end Completed while the worker is still up.
        audit_run = _flow_run(env, row.flow_run_id)
        assert audit_run["parent_task_run_id"], "with --jobs/--cluster the audit runs as a subflow"
        deployment_run_id = _task_run(env, audit_run["parent_task_run_id"])["flow_run_id"]
        for run_id in (row.flow_run_id, deployment_run_id):
            _wait(lambda run_id=run_id: _flow_run(env, run_id)["state"]["type"] == "COMPLETED", 120, f"flow run {run_id} to be Completed")
        assert _flow_run(env, deployment_run_id)["deployment_id"]
    finally:
        _stop(worker)
        _labelq(env, "schedule", "--remove", "digits-nightly", check=False)  # never left for the other tests
    assert Store(store).version("digits-nightly").manifest_json()["rows"] == 1797
    assert "No scheduled audits." in _labelq(env, "schedule", "--list").stdout
    assert read_history(Store(store), "digits-nightly"), "removing the schedule keeps the history"


def test_bad_schedules_are_refused_before_anything_is_registered(prefect_server, tmp_path):
    env = prefect_server
    bad = _labelq(env, "schedule", "x", "digits", "--store", str(tmp_path / "s"), "--cron", "every night", check=False)
    assert bad.returncode != 0 and "not a valid cron schedule" in bad.stderr
    both = _labelq(env, "schedule", "x", "digits", "--store", str(tmp_path / "s"), "--cron", "0 3 * * *", "--interval", "60", check=False)
    assert both.returncode != 0 and "exactly one of --cron and --interval" in both.stderr
    model = _labelq(env, "schedule", "x", "digits", "--store", str(tmp_path / "s"), "--model", "nope", "--interval", "60", check=False)
    assert model.returncode != 0 and "unknown model 'nope'" in model.stderr
    unchecked = _labelq(env, "schedule", "x", str(tmp_path / "later.csv"), "--model", "nope", "--no-check", "--interval", "60", check=False)
    assert unchecked.returncode != 0 and "unknown model 'nope'" in unchecked.stderr
    missing = _labelq(env, "schedule", "x", str(tmp_path / "missing.csv"), "--interval", "60", check=False)
    assert missing.returncode != 0 and "missing.csv" in missing.stderr
    unknown = _labelq(env, "schedule", "--remove", "never-scheduled", check=False)
    assert unknown.returncode != 0 and "no scheduled audit named 'never-scheduled'" in unknown.stderr
    assert "No scheduled audits." in _labelq(env, "schedule", "--list").stdout


def test_a_worker_killed_mid_run_leaves_the_store_consistent_and_the_next_run_completes(prefect_server, tmp_path):
    """Kill the worker (and the audit it runs) once the first fold is cached; restart it: a later run
    completes and reuses the cached folds, the store holds only whole versions, the history only completed runs."""
    env, store = prefect_server, tmp_path / "store"
    _labelq(env, "schedule", "digits-killed", "digits", "--store", str(store), "--model", "cnn", "--model-param", "epochs=3", "--interval", "15")
    log = tmp_path / "worker.log"
    worker = _worker(env, log)
    try:
        _wait(lambda: list((store / "cache" / "folds").glob("*.npz")), 300, "the first scheduled audit to cache a fold", every=0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
    time.sleep(1)
    assert read_history(Store(store), "digits-killed") == []
    assert Store(store).datasets() == []  # nothing half-published

    worker = _worker(env, log)
    try:
        rows = _wait(lambda: read_history(Store(store), "digits-killed"), 600, "a completed scheduled run after the kill", every=2)
    finally:
        _stop(worker)
        _labelq(env, "schedule", "--remove", "digits-killed")
    assert rows[0].status == "ok" and rows[0].rows == 1797 and rows[0].folds_cached >= 1
    # later runs may have finished (or been stopped) meanwhile: every version has the record of the run that
    # published it, and every other record (an unchanged source: nothing published) names an existing version
    rows, versions = read_history(Store(store), "digits-killed"), Store(store).versions("digits-killed")
    assert sorted(r.version for r in rows if r.published) == [v.number for v in versions]
    assert {r.version for r in rows} == {v.number for v in versions}
    assert all(v.manifest_json()["rows"] == 1797 and v.read(columns=["id"]).num_rows == 1797 for v in versions)
