"""Scale: an audit with given pred_probs, labelq against cleanlab, side by side in the same run.

For each size N x K: synthetic pred_probs (softmax of Gaussian logits, the true class's logit raised by
3, float32 ``.npy``) and labels with 10% flipped to another class (Parquet: ``id``, ``label``). Then,
each in its own process, with its wall time and peak resident memory:

- cleanlab: ``cleanlab.filter.find_label_issues(labels, pred_probs)`` with its defaults, the arrays
  loaded from the same files;
- labelq: ``labelq audit labels.parquet --pred-probs pred_probs.npy --no-prefect`` into a fresh store
  (ingest, detect, decide, publish, history record, report).

    python bench/scale.py                 # 1M x 10, 1M x 100 and 200k x 1000 side by side; 10M x 100 and 20M x 100 labelq alone
    python bench/scale.py 200000x10 --alone   # only the sizes named, side by side; --alone SIZES: labelq alone
    python bench/scale.py 200000x10 --alone --profile   # also where labelq's time goes (cProfile, top 15)
    python bench/scale.py 1000000x10 --alone --payload 1000   # the labels file also holds 1 KB of text a row
    python bench/scale.py 1000000x10 --alone --extra-column   # and a column x (a float a row): an input labelq reads

cleanlab is left out of the largest sizes: it needs the whole array in memory several times over
(1.4 GB at 1M x 100), 15 GB and more at 10M x 100.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402
from audit_speed import WRAPPER  # noqa: E402


def make_data(folder: Path, n: int, k: int, seed: int = 0, payload: int = 0, extra: bool = False) -> tuple[Path, Path]:
    """Write ``pred_probs.npy`` (float32) and ``labels.parquet``, chunk by chunk (the big sizes do not fit twice).
    ``payload`` > 0: the Parquet file also has a ``text`` column of that many random letters a row, written
    by row groups (the inputs that an audit with given pred_probs never needs). ``extra``: one more column,
    ``x`` (a float a row), beside ``id`` and ``label``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    probs_path, labels_path = folder / "pred_probs.npy", folder / "labels.parquet"
    out = np.lib.format.open_memmap(probs_path, mode="w+", dtype=np.float32, shape=(n, k))
    labels = np.empty(n, dtype=np.int64)
    step = max(1, 20_000_000 // k)
    for start in range(0, n, step):
        m = min(step, n - start)
        true = rng.integers(0, k, m)
        logits = rng.normal(0.0, 1.0, (m, k))
        logits[np.arange(m), true] += 3.0
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out[start : start + m] = p / p.sum(axis=1, keepdims=True)
        flip = rng.random(m) < 0.1
        labels[start : start + m] = np.where(flip, (true + rng.integers(1, k, m)) % k, true)
    out.flush()
    del out
    ids = pa.array([f"r{i}" for i in range(n)], pa.string())
    table = pa.table({"id": ids, "label": pa.array(labels)})
    if extra:
        table = table.append_column("x", pa.array(rng.normal(size=n)))
    if not payload:
        pq.write_table(table, labels_path)
        return probs_path, labels_path
    schema = table.schema.append(pa.field("text", pa.string()))
    with pq.ParquetWriter(labels_path, schema) as writer:
        for start in range(0, n, 50_000):
            m = min(50_000, n - start)
            letters = rng.integers(97, 123, m * payload, dtype=np.uint8)
            offsets = pa.py_buffer(np.arange(0, (m + 1) * payload, payload, dtype=np.int32))
            text = pa.StringArray.from_buffers(m, offsets, pa.py_buffer(letters))
            writer.write_table(pa.table([*table.slice(start, m).columns, text], schema=schema))
    return probs_path, labels_path


def make_data_apart(folder: Path, n: int, k: int, payload: int = 0, extra: bool = False) -> tuple[Path, Path]:
    """``make_data`` in a child process. The peak resident memory a child reports (``ru_maxrss``) is kept
    across ``exec`` from the moment it was forked, so a parent that had just built 10M ids would lend
    the tools its own size: this process stays small, and each tool's figure is its own."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from pathlib import Path; from scale import make_data; make_data(Path(sys.argv[1]), {n}, {k}, payload={payload}, extra={extra})"
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)
    return folder / "pred_probs.npy", folder / "labels.parquet"


CLEANLAB = """
import resource, sys, time
import numpy as np, pyarrow.parquet as pq
from cleanlab.filter import find_label_issues
probs = np.load(sys.argv[1])
labels = pq.read_table(sys.argv[2], columns=["label"])["label"].to_numpy()
t0 = time.perf_counter()
flagged = find_label_issues(labels, probs)
print("RESULT", int(flagged.sum()), round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_cleanlab(probs_path: Path, labels_path: Path) -> dict:
    """cleanlab in a fresh interpreter (its worker pool forks and relies on the parent's globals)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLEANLAB, str(probs_path), str(labels_path)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"cleanlab failed:\n{proc.stderr[-2000:]}")
    _, flagged, compute, peak = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT")).split()
    return {"flagged": int(flagged), "compute_s": float(compute), "wall_s": round(wall, 1), "peak_rss_mib": round(int(peak) / 1024)}


LABELQ_CL = """
import sys, time
import pyarrow.parquet as pq
from labelq.detect import ConfidentLearning
from labelq.predict.probs import NpyProbs
labels = pq.read_table(sys.argv[2], columns=["label"])["label"].to_numpy()
t0 = time.perf_counter()
det = ConfidentLearning().detect(labels, NpyProbs(sys.argv[1]))
print("RESULT", int(det.is_issue.sum()), round(time.perf_counter() - t0, 2))
"""


def time_labelq_cl(probs_path: Path, labels_path: Path) -> float:
    """labelq's confident learning alone (flags, scores, joint, noise matrix, estimate), reading the .npy by chunks."""
    proc = subprocess.run([sys.executable, "-c", LABELQ_CL, str(probs_path), str(labels_path)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"labelq confident learning failed:\n{proc.stderr[-2000:]}")
    return float(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT")).split()[2])


def run_labelq(probs_path: Path, labels_path: Path, profile: bool) -> dict:
    with tempfile.TemporaryDirectory() as store:
        args = ["audit", str(labels_path), "--pred-probs", str(probs_path), "--store", store, "--no-prefect", "-q", "--top", "0"]
        code = WRAPPER
        if profile:
            code = "import cProfile, pstats\n" + WRAPPER.replace("main()\n", "cProfile.run('main()', '/tmp/labelq-scale.prof')\n")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"labelq audit failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        peak = int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KIB")))
        import json

        manifest = json.loads(next(Path(store).glob("datasets/*/v0001/manifest.json")).read_text())
    return {
        "flagged": manifest["n_label_issues"],
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak / 1024),
        "cl_s": time_labelq_cl(probs_path, labels_path),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", default=["1000000x10", "1000000x100", "200000x1000"], help="N x K side by side with cleanlab, e.g. 1000000x10")
    ap.add_argument("--alone", nargs="*", default=["10000000x100", "20000000x100"], help="N x K for labelq alone (none: --alone with no sizes)")
    ap.add_argument("--payload", type=int, default=0, help="Bytes of text a row in the labels' Parquet file (inputs no model reads).")
    ap.add_argument("--extra-column", action="store_true", help="The labels' Parquet file also holds a column x (a float a row).")
    ap.add_argument("--profile", action="store_true", help="Profile labelq's run and print the 15 most expensive calls.")
    args = ap.parse_args()
    rows = []
    for size, alone in [*((s, False) for s in args.sizes), *((s, True) for s in args.alone)]:
        n, k = (int(x) for x in size.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            probs_path, labels_path = make_data_apart(Path(tmp), n, k, args.payload, args.extra_column)
            mb, data_mb = probs_path.stat().st_size / 1e6, labels_path.stat().st_size / 1e6
            cl = None if alone else run_cleanlab(probs_path, labels_path)
            lq = run_labelq(probs_path, labels_path, args.profile)
        rows.append(
            {
                "N x K": f"{n:,} x {k}",
                "pred_probs MB": round(mb),
                "labels + inputs MB": round(data_mb),
                "cleanlab s": cl["wall_s"] if cl else "-",
                "cleanlab peak MiB": cl["peak_rss_mib"] if cl else "-",
                "cleanlab compute s": cl["compute_s"] if cl else "-",
                "labelq s": lq["wall_s"],
                "labelq peak MiB": lq["peak_rss_mib"],
                "labelq CL s": lq["cl_s"],
                "time ratio": round(lq["wall_s"] / cl["wall_s"], 1) if cl else "-",
                "memory ratio": round(lq["peak_rss_mib"] / cl["peak_rss_mib"], 1) if cl else "-",
                "CL speed-up": round(cl["compute_s"] / lq["cl_s"], 1) if cl else "-",
                "flagged (cleanlab / labelq)": f"{cl['flagged']:,} / {lq['flagged']:,}" if cl else f"- / {lq['flagged']:,}",
            }
        )
        print(rows[-1], flush=True)
        if args.profile:
            import pstats

            pstats.Stats("/tmp/labelq-scale.prof").sort_stats("cumulative").print_stats(15)
    print_table(rows, "Audit with given pred_probs: labelq against cleanlab (2 cores; wall time and peak RSS of each process)")


if __name__ == "__main__":
    main()
