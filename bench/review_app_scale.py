"""The review app on a large version: the server's peak memory and the time to the first row.

A 1,000,000-row text dataset (the fine-food reviews repeated, each row its own id), audited from given
pred_probs (a noisy copy of the labels' one-hot, so about 2% of rows are flagged) with
``labelq audit --pred-probs --no-data-checks``; then ``labelq review serve`` in its own process. Measured:
seconds from the server's start to the page's first row (``/api/state``, then ``/api/row/<next>``), a
search, a jump to a row outside the queue, and the server's peak resident memory (``VmHWM``) after them.

    python bench/review_app_scale.py [--rows 1000000] [--work /tmp/labelq-app-scale]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_kib, print_table  # noqa: E402


def build(work: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelq.ingest import load_examples

    src = work / f"foods-{n}.parquet"
    if src.exists():
        return src
    foods = load_examples("fine-foods")
    reps = -(-n // foods.num_rows)
    idx = np.tile(np.arange(foods.num_rows), reps)[:n]
    labels = foods["label"].to_numpy()[idx]
    table = pa.table(
        {"id": [f"r{i:07d}" for i in range(n)], "text": foods["text"].take(pa.array(idx)), "label": pa.array(np.array(["great", "other"])[labels])}
    )
    pq.write_table(table, src, row_group_size=65536)
    rng = np.random.default_rng(0)
    probs = np.eye(2)[labels] * 0.9 + 0.05
    flip = rng.random(n) < 0.02
    probs[flip] = probs[flip][:, ::-1]
    probs += rng.uniform(0, 0.04, probs.shape)
    np.save(work / f"foods-{n}.npy", (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32))
    return src


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--work", default="/tmp/labelq-app-scale")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    src = build(work, a.rows)
    store = work / "store"
    name = f"foods-{a.rows}"
    if not (store / "datasets" / name).exists():
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "labelq.cli",
                "audit",
                str(src),
                "--store",
                str(store),
                "--pred-probs",
                str(work / f"{name}.npy"),
                "--no-data-checks",
                "--no-prefect",
                "-q",
            ],
            check=True,
        )
        print(f"audited {a.rows:,} rows in {time.perf_counter() - t:.0f}s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelq.cli", "review", "serve", name, "--store", str(store), "--port", str(port), "--token", "t"], stdout=subprocess.DEVNULL
    )
    headers = {"X-Labelq-Token": "t"}
    try:
        while True:
            try:
                state = httpx.get(url + "api/state", params={"reviewer": "ann"}, headers=headers, timeout=600).json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        row = httpx.get(url + f"api/row/{state['next']}", params={"reviewer": "ann"}, headers=headers, timeout=600).json()
        first = time.perf_counter() - t0
        t = time.perf_counter()
        hits = httpx.get(url + "api/search", params={"q": "peanut butter"}, headers=headers, timeout=600).json()["ids"]
        search = time.perf_counter() - t
        t = time.perf_counter()
        other = httpx.get(url + f"api/row/r{a.rows - 1:07d}", params={"reviewer": "ann"}, headers=headers, timeout=600).json()
        jump = time.perf_counter() - t
        peak = peak_rss_kib(proc.pid) / 1024
    finally:
        proc.terminate()
        proc.wait(10)
    assert row["id"] == state["next"] and other["id"] == f"r{a.rows - 1:07d}" and hits
    print_table(
        [
            {
                "rows": f"{a.rows:,}",
                "queue (flagged)": f"{len(state['queue']):,}",
                "s to the first row": round(first, 2),
                "search s": round(search, 2),
                "jump s": round(jump, 3),
                "server peak MiB": round(peak, 0),
                "version on disk MiB": round(sum(f.stat().st_size for f in (store / "datasets" / name).rglob("v0001/**/*.parquet")) / 2**20, 0),
            }
        ],
        "The review app on a large version",
    )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
