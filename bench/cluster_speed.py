"""Wall time of the Fashion-MNIST audit (70,000 images, CNN, 5 folds): in one process (every core per
fold, and one thread per fold), and with the folds on a local Dask cluster of 2 worker processes of one
thread each (prefect-dask); then a re-audit of the unchanged dataset, which should train nothing (every
fold comes from the cache). Each run starts from an empty store (except the re-audit) in a process of
its own. The Dask run is compared with the one-process run of the same threads per fold: same seed,
same threads, so the predictions should be bit-identical.

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


def run(source: str, store: str, how: str, fold_threads: int | None) -> dict:
    offline_env()
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    from labelq.flows.audit import run_audit_flow
    from labelq.pipeline import AuditConfig

    cfg = AuditConfig.from_options(source=source, store=store, fold_threads=fold_threads)
    with prefect_test_harness(server_startup_timeout=120):
        r = run_audit_flow(cfg, jobs=2 if how == "dask" else 1, cluster="local" if how == "dask" else None)
    from labelq.predict import pred_probs_array

    issues = r.version.read(columns=["is_label_issue"])["is_label_issue"].to_pylist()
    return {
        "threads per fold": fold_threads or "all (2)",
        "flagged": sum(issues),
        "folds reused": f"{r.history['folds_cached']}/{r.history['folds_total']}",
        "issues": issues,
        "probs": pred_probs_array(r.version.read_table("pred_probs")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="fashion-mnist")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labelq-cluster-"))
    rows, out = [], {}
    runs = (
        ("one process, folds one after another", "seq", work / "seq", None),
        ("one process, 1 thread per fold", "seq", work / "seq1", 1),
        ("local Dask cluster, 2 worker processes", "dask", work / "dask", 1),
        ("re-audit of the unchanged dataset", "seq", work / "seq", None),
    )
    for label, how, store, threads in runs:
        res = measured(run, args.source, str(store), how, threads)
        out[label] = (res.pop("issues"), res.pop("probs"))
        rows.append({"run": label, **res})
    (a_issues, a_probs), (b_issues, b_probs) = out[runs[1][0]], out[runs[2][0]]
    import numpy as np

    same = a_issues == b_issues and np.array_equal(a_probs, b_probs)
    print_table(
        rows,
        f"{args.source} audit wall time (2 cores); Dask run bit-identical to the one-process run with 1 thread per fold: {same} "
        f"(max |pred_probs difference| {float(np.abs(a_probs - b_probs).max()):.2g})",
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
