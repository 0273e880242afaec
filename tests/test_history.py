"""Audit history and alerts: real audits of digits into a real store, the catalog's history table, the
CLI, and a Prefect flow run that ends Failed with the alert's reasons."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelq import schema as S
from labelq.cli import main
from labelq.history import AlertRules, AuditAlert, RunRecord, check_alerts, read_history
from labelq.sql import run_query
from labelq.store import Store


def test_every_run_is_recorded_and_an_unchanged_source_trains_nothing(tmp_path):
    root = tmp_path / "store"
    args = ["audit", "digits", "--store", str(root), "--model", "logreg", "--no-prefect", "-q", "--top", "0"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "0 of 5 folds reused" in r.output and "estimated label-error rate" in r.output
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "5 of 5 folds reused (unchanged source: no model was trained)" in r.output, r.output
    assert "Unchanged since digits v0001 (nothing published; the run is in the history)" in r.output, r.output
    store = Store(root)
    assert [v.tag for v in store.versions("digits")] == ["v0001"]  # an unchanged re-audit adds a record, not a copy
    runs = read_history(store, "digits")
    assert [x.version for x in runs] == [1, 1] and [x.unchanged_source for x in runs] == [False, True]
    assert [x.published for x in runs] == [True, False]
    assert runs[0].finished_at < runs[1].finished_at  # milliseconds: the cached re-run can finish within the first run's second
    first = runs[0]
    assert first.rows == 1797 and first.flagged == store.version("digits", 1).manifest_json()["n_label_issues"]
    assert first.estimated_error_rate_lo <= first.estimated_error_rate <= first.estimated_error_rate_hi
    assert len(first.class_share) == 10 and abs(sum(first.class_share) - 1) < 1e-9
    assert first.detector["cleanlab"] and first.model == "logreg" and first.duration_s > 0
    table = run_query(store, "digits", "SELECT version, folds_cached, status FROM history ORDER BY version").to_pylist()
    assert table == [{"version": 1, "folds_cached": 0, "status": "ok"}, {"version": 1, "folds_cached": 5, "status": "ok"}]
    r = CliRunner().invoke(main, ["history", "digits", "--store", str(root)])
    assert r.exit_code == 0 and "5/5" in r.output and "0/5" in r.output, r.output
    html = (root / "datasets" / "digits" / "reports" / "v0001.html").read_text()  # rewritten with the second run in its history
    assert 'alt="figure"' in html and html.count('<img class="fig"') == 4  # heatmap, rates, histogram, history trend


def test_alert_rules():
    prev = RunRecord(estimated_error_rate=0.02, class_names=["a", "b"], class_share=[0.5, 0.5])
    rec = RunRecord(estimated_error_rate=0.05, class_names=["a", "b"], class_share=[0.4, 0.6])
    assert check_alerts(rec, prev, AlertRules()) == []
    reasons = check_alerts(rec, prev, AlertRules(max_rate=0.04, max_increase=0.01, max_class_shift=0.05))
    assert len(reasons) == 3 and "above the limit" in reasons[0] and "rose from 2.00% to 5.00%" in reasons[1] and "'a' moved" in reasons[2]
    assert check_alerts(rec, None, AlertRules(max_increase=0.0)) == []  # nothing to compare with on the first run


def test_class_shift_alert_fails_the_cli_and_is_recorded(tmp_path, digits):
    root = tmp_path / "store"
    assert CliRunner().invoke(main, ["audit", "digits", "--store", str(root), "--model", "logreg", "--no-prefect", "-q"]).exit_code == 0
    labels = digits[S.LABEL].to_numpy()
    drop = np.flatnonzero(labels == 0)[::2]  # half of class 0: its share falls from 9.9% to about 5%
    keep = np.setdiff1d(np.arange(len(labels)), drop)
    pq.write_table(digits.take(keep), tmp_path / "fewer-zeros.parquet")
    r = CliRunner().invoke(
        main,
        [
            "audit",
            str(tmp_path / "fewer-zeros.parquet"),
            "--name",
            "digits",
            "--store",
            str(root),
            "--model",
            "logreg",
            "--no-prefect",
            "-q",
            "--alert-class-shift",
            "0.03",
        ],
    )
    assert r.exit_code == 3 and "alert:" in r.output and "class '0' moved" in r.output, r.output
    store = Store(root)
    assert store.version("digits").number == 2  # the version is published; the alert is about its quality
    last = read_history(store, "digits")[-1]
    assert last.status == "alert" and last.alerts and last.version == 2


def test_an_alert_fails_the_prefect_flow_run_with_its_reasons(tmp_path, prefect_harness):
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from labelq.flows.audit import run_audit_flow
    from labelq.pipeline import AuditConfig

    with pytest.raises(AuditAlert, match="above the limit"):
        run_audit_flow(AuditConfig.from_options(source="digits", store=str(tmp_path / "s"), model="logreg", alert_max_rate=0.0001))
    record = read_history(Store(tmp_path / "s"), "digits")[-1]  # names its own flow run: the server is shared by the whole session
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(record.flow_run_id))
    assert run.state.is_failed() and "above the limit" in (run.state.message or "")
    assert run.parameters["store"] == str(tmp_path / "s") and record.status == "alert"


def test_a_run_record_appears_with_its_version_or_not_at_all(tmp_path):
    """The record is written inside the version before the rename: a failure while writing it leaves no version."""
    from labelq.pipeline import AuditConfig, audit

    store = Store(tmp_path / "s")
    table = audit(AuditConfig.from_options(source="digits", store=str(store.root), model="logreg")).version.read()

    def broken(manifest):
        raise OSError("disk full while writing the run record")

    with pytest.raises(OSError, match="disk full"):
        store.publish("digits", table, {}, records=broken)
    assert [v.number for v in store.versions("digits")] == [1] and not list(store.dataset_dir("digits").glob(".tmp-*"))
    assert [r.version for r in read_history(store, "digits")] == [1]
    assert (store.version("digits").path / "run.json").exists()


def _audit_in_child(root: str, queue) -> None:
    from labelq.pipeline import AuditConfig, audit

    queue.put(audit(AuditConfig.from_options(source="digits", store=root, model="logreg")).version.number)


def test_two_audits_at_once_publish_two_versions_each_with_its_record(tmp_path):
    """Two real processes audit the same dataset into the same store at the same time."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_audit_in_child, args=(str(tmp_path / "s"), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    numbers = sorted([queue.get(timeout=300), queue.get(timeout=300)])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    store = Store(tmp_path / "s")
    runs = read_history(store, "digits")
    # the second to take the lock publishes v0002, or, when its files equal v0001's, records its run only
    assert [v.number for v in store.versions("digits")] == sorted(set(numbers)) and numbers[0] == 1
    assert sorted(r.version for r in runs) == numbers and [r.published for r in runs].count(True) == len(set(numbers))
    # the second to publish compared with the first (records finishing in the same second sort by run id)
    assert sorted(r.unchanged_source for r in runs) == [False, True]
    assert run_query(store, "digits", "SELECT count(*) AS n FROM history").to_pylist() == [{"n": 2}]


def test_with_many_classes_the_report_plots_the_noisiest_25_legibly():
    """1000 classes: the heatmap and the bars show the 25 classes with the most estimated noise, named, in class
    order (all 1000 took 8 s to draw and no cell could be read)."""
    from labelq.report import plots

    rng = np.random.default_rng(0)
    k = 1000
    joint = np.diag(np.full(k, 0.9 / k))
    noisy = rng.choice(k, 25, replace=False)
    joint[noisy, (noisy + 1) % k] = 0.1 / 25
    assert plots._most(joint.sum(axis=1) - joint.diagonal()).tolist() == sorted(noisy.tolist())
    names = [f"c{i}" for i in range(k)]
    for uri in (plots.noise_heatmap(joint, names, 10_000), plots.class_rates(names, rng.random(k), rng.random(k))):
        assert uri.startswith("data:image/png;base64,") and len(uri) < 400_000
    assert plots._most(np.arange(10.0)).tolist() == list(range(10))  # few classes: all of them


def test_a_run_record_is_typed_and_its_json_unchanged(tmp_path):
    """``read_history`` gives ``RunRecord``s; a record's JSON reads and writes back with its keys, one it does not know
    included, and a record from before a field existed reads it as None."""
    on_disk = {"run_id": "r1", "finished_at": "2026-12-04T00:00:00.000+00:00", "version": 3, "rows": 10, "alerts": ["x"], "status": "alert", "later": 1}
    record = RunRecord.from_json(on_disk)
    assert (record.version, record.alerts, record.outlier_rows, record.extra) == (3, ["x"], None, {"later": 1})
    assert {k: v for k, v in record.to_json().items() if v is not None} == on_disk
    assert RunRecord.from_json(record.to_json()) == record
