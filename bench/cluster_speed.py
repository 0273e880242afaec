"""Wall time of the Fashion-MNIST audit (70,000 images, CNN, 5 folds): in one process, and with the folds
on a local Dask cluster of 2 worker processes (prefect-dask); then a re-audit of the unchanged dataset,
which should train nothing (every fold comes from the cache). Each run starts from an empty store
(except the re-audit) in a process of its own.

    python bench/cluster_speed.py [--source fashion-mnist]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, print_table  # noqa: E402


def run(source: str, store: str, how: str) -> dict:
    offline_env()
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from labelq.flows.audit import run_audit_flow
    from labelq.pipeline import AuditConfig

    cfg = AuditConfig(source=source, store=store)
    with prefect_test_harness(server_startup_timeout=120):
        r = run_audit_flow(cfg, jobs=2 if how == "dask" else 1, cluster="local" if how == "dask" else None)
    issues = r.version.read(columns=["is_label_issue"])["is_label_issue"].to_pylist()
    return {"flagged": sum(issues), "folds reused": f"{r.history['folds_cached']}/{r.history['folds_total']}", "issues": issues}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="fashion-mnist")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labelq-cluster-"))
    rows, issues = [], {}
    for label, how, store in (("one process (threads, 1 fold at a time)", "seq", work / "seq"),
                              ("local Dask cluster, 2 worker processes", "dask", work / "dask"),
                              ("re-audit of the unchanged dataset", "seq", work / "seq")):
        out = measured(run, args.source, str(store), how)
        issues[label] = out.pop("issues")
        rows.append({"run": label, **out})
    same = issues[rows[0]["run"]] == issues[rows[1]["run"]]
    print_table(rows, f"{args.source} audit wall time (2 cores); same flagged rows on Dask as in one process: {same}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
