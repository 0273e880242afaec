"""What integrity checks cost: verifying a published version, and a `labelq query` that verifies first.

Publishes Fashion-MNIST (70,000 rows, images inline) with given pred_probs (seeded Dirichlet draws: no
training), then, each in a fresh process so nothing is remembered:
- `Version.verify()` of the version (sha256 of every file, Parquet footers, manifest checks);
- `run_query(SELECT count(*) FROM latest)`, which verifies every version first;
- the same query's DuckDB work alone, on a connection made without verifying.

    python bench/verify_speed.py [--store DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
from labelq.store import Store
root, what = sys.argv[1], sys.argv[2]
store = Store(root)
t0 = time.perf_counter()
if what == "verify":
    problems = store.version("fm", check=False).verify()
    assert not problems, problems
elif what == "query":
    from labelq.sql import run_query
    run_query(store, "fm", "SELECT count(*) FROM latest")
else:  # the same DuckDB work without verifying
    import duckdb
    from labelq import sql
    con = duckdb.connect(":memory:")
    sql._create_views(con, store, "fm", store.dataset_dir("fm").resolve())
    con.sql("SELECT count(*) FROM latest").fetchall()
print(json.dumps({"s": time.perf_counter() - t0}))
"""


def timed(root: Path, what: str, repeats: int = 3) -> float:
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, str(root), what], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1])["s"])
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default=None)
    args = ap.parse_args()
    root = Path(args.store or tempfile.mkdtemp(prefix="labelq-verify-bench-")) / "store"
    from labelq.ingest import load_examples
    from labelq.pipeline import audit

    if not (root / "datasets" / "fm").exists():
        n = load_examples("fashion-mnist").num_rows
        probs = np.random.default_rng(0).dirichlet(np.full(10, 0.3), n)
        pp = root.parent / "pred_probs.npy"
        root.parent.mkdir(parents=True, exist_ok=True)
        np.save(pp, probs)
        audit(source="fashion-mnist", name="fm", store=str(root), pred_probs=str(pp))
    v = next(iter((root / "datasets" / "fm").glob("v0001")))
    mib = sum(p.stat().st_size for p in v.rglob("*") if p.is_file()) / 2**20
    t_verify, t_query, t_bare = timed(root, "verify"), timed(root, "query"), timed(root, "bare")
    print("| version | files MiB | verify s | sha256 MiB/s | query s (verifies first) | query s without verifying |")
    print("|---|---|---|---|---|---|")
    print(f"| Fashion-MNIST v0001, 70,000 rows | {mib:.1f} | {t_verify:.3f} | {mib / t_verify:.0f} | {t_query:.3f} | {t_bare:.3f} |")


if __name__ == "__main__":
    main()
