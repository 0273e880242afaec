"""The audit as a Prefect flow, against a real (temporary) Prefect API."""

from __future__ import annotations

import asyncio
import re

import pytest

from labelq.errors import InputError
from labelq.pipeline import AuditConfig
from labelq.store import Store


def test_audit_flow_publishes_and_is_recorded_in_prefect(prefect_harness, store_dir):
    from prefect.client.orchestration import get_client

    from labelq.flows.audit import run_audit_flow

    cfg = AuditConfig.from_options(source="digits", name="flowdigits", store=str(store_dir), model="logreg", n_folds=3)
    result = run_audit_flow(cfg, jobs=2)
    v = Store(store_dir).version("flowdigits")
    assert result.version == v and result.report_html.exists()
    run_id = v.manifest_json()["run"]["flow_run_id"]

    async def states():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            tasks = await client.read_task_runs()
            return run, [t for t in tasks if t.flow_run_id == run.id]

    run, tasks = asyncio.run(states())
    assert run.state.is_completed()
    names = sorted(t.name.rsplit("-", 1)[0] if not t.name.startswith("fold") else "fold" for t in tasks)
    assert names.count("fold") == 3
    assert {"ingest", "plan-folds", "assemble", "confident-learning", "publish", "report"} <= set(names)

    # folds run two at a time in the flow; the predictions equal the sequential library call's
    import numpy as np

    from labelq.ingest import load_examples
    from labelq.predict import cross_val_pred_probs, pred_probs_array

    sequential = cross_val_pred_probs(load_examples("digits"), model="logreg", n_folds=3, seed=0)
    np.testing.assert_array_equal(pred_probs_array(v.read_table("pred_probs")), pred_probs_array(sequential))


def test_flow_with_bad_input_fails_with_the_clear_error(prefect_harness, store_dir, tmp_path):
    from labelq.flows.audit import audit_flow

    (tmp_path / "d.csv").write_text("x,label\n1,a\n")
    with pytest.raises(InputError, match="single class"):
        audit_flow(source=str(tmp_path / "d.csv"), store=str(store_dir))
    assert Store(store_dir).datasets() == []


def test_a_local_dask_cluster_gives_the_same_issues_as_the_sequential_run(tmp_path, prefect_harness):
    """Folds of a torch CNN on two real Dask worker processes (prefect-dask) against the single-process
    run with the same seed and the same threads per fold: bit-identical predictions and issues."""
    import numpy as np

    from labelq.flows.audit import run_audit_flow
    from labelq.pipeline import AuditConfig, audit
    from labelq.predict import pred_probs_array

    opts = dict(source="digits", model="cnn", model_params={"epochs": 2, "width": 8}, fold_threads=1)
    seq = audit(AuditConfig.from_options(store=str(tmp_path / "a"), **opts))
    dask = run_audit_flow(AuditConfig.from_options(store=str(tmp_path / "b"), **opts), jobs=2, cluster="local")
    a, b = seq.version.read(), dask.version.read()
    assert a["is_label_issue"].to_pylist() == b["is_label_issue"].to_pylist()
    assert a["issue_rank"].to_pylist() == b["issue_rank"].to_pylist()
    np.testing.assert_array_equal(pred_probs_array(seq.version.read_table("pred_probs")), pred_probs_array(dask.version.read_table("pred_probs")))
    assert dask.history.folds_total == 5 and dask.history.flow_run_id


def test_on_a_local_dask_cluster_confident_learning_reads_the_given_pred_probs_on_the_workers(tmp_path, prefect_harness, capfd, caplog):
    """``--cluster`` with given pred_probs: the confident-learning passes run on two Dask worker processes,
    each reading its row ranges; the flags and ranks equal a one-process audit's. The cluster's run is
    given them as a folder of Parquet parts keyed by id, in another row order (as a distributed
    inference job writes them), the one-process run as a .npy in row order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelq.flows.audit import run_audit_flow
    from labelq.pipeline import audit

    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 1.0, (3000, 4))
    true = rng.integers(0, 4, 3000)
    logits[np.arange(3000), true] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.where(rng.random(3000) < 0.1, (true + 1) % 4, true)
    np.save(tmp_path / "p.npy", probs.astype(np.float32))
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(3000)], "label": labels}), tmp_path / "labels.parquet")
    parts = tmp_path / "pred_probs"
    parts.mkdir()
    for i, rows in enumerate(np.array_split(rng.permutation(3000), 3)):
        pq.write_table(pa.table({"id": [f"r{r}" for r in rows], "pred_probs": probs[rows].astype(np.float32).tolist()}), parts / f"part-{i}.parquet")
    opts = dict(source=str(tmp_path / "labels.parquet"), name="syn")
    one = audit(AuditConfig.from_options(store=str(tmp_path / "a"), pred_probs=str(tmp_path / "p.npy"), **opts))
    capfd.readouterr()
    caplog.set_level("INFO", logger="labelq")
    dask = run_audit_flow(AuditConfig.from_options(store=str(tmp_path / "b"), pred_probs=str(parts), **opts), jobs=2, cluster="local")
    # the flow's log: on stderr through Prefect's handler, or in caplog once logging was set up by an earlier test;
    # a worker still starting is not counted yet
    logged = capfd.readouterr().err + caplog.text
    assert re.search(r"confident learning on [12] Dask workers, over [24] row ranges", logged), logged[-3000:]
    a, b = one.version.read(), dask.version.read()
    assert a["is_label_issue"].to_pylist() == b["is_label_issue"].to_pylist() and sum(a["is_label_issue"].to_pylist()) > 100
    assert a["issue_rank"].to_pylist() == b["issue_rank"].to_pylist() and a["label_score"].to_pylist() == b["label_score"].to_pylist()


def test_step_tasks_retry_only_what_a_retry_can_help(prefect_harness, tmp_path):
    from prefect import flow

    from labelq.errors import NotLatestError, VersionConflictError
    from labelq.flows.tasks import step_task

    calls = tmp_path / "calls"

    def publish_once_the_number_is_free() -> str:  # another writer took the number on the first try
        calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
        if len(calls.read_text()) == 1:
            raise VersionConflictError("v0002 already exists", "publish again")
        return "published"

    def review_of_an_old_version() -> str:
        calls.write_text(calls.read_text() + "y")
        raise NotLatestError("v0001 is no longer the latest version", "redo the change on the latest version")

    def bad_input() -> str:
        calls.write_text(calls.read_text() + "z")
        raise InputError("the source has no rows")

    @flow
    def job(fn_name: str) -> str:
        return step_task({"a": publish_once_the_number_is_free, "b": review_of_an_old_version, "c": bad_input}[fn_name], fn_name)()

    assert job("a") == "published" and calls.read_text() == "xx"  # retried once, then succeeded
    with pytest.raises(NotLatestError):
        job("b")
    with pytest.raises(InputError):
        job("c")
    assert calls.read_text() == "xxyz"  # neither was retried
