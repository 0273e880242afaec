"""Label Studio for real: labelq's review export into a real Label Studio server and back.

Starts Label Studio (the ``label-studio`` package, in its own virtual environment: it is a Django
application with its own pins) on 127.0.0.1 with a fresh data folder, then:

1. creates a project with the labeling config that ``labelq review export`` writes;
2. imports labelq's tasks (digits with 10% flipped labels, audited; the 20 rows that need review);
3. annotates every task through Label Studio's REST API: a reviewer who knows the true digit;
4. exports the project as JSON;
5. ``labelq review import``: the new version's reviewed rows hold the reviewer's labels, and DuckDB
   reads them.

Each step is timed and printed as a table. Install Label Studio once, beside the project:

    python3 -m venv /work/lsvenv && /work/lsvenv/bin/pip install label-studio
    python bench/label_studio_roundtrip.py [--label-studio /work/lsvenv/bin/label-studio]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402

TOKEN = "labelq0roundtrip0token0000000000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary: str, data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false"}
    env.pop("HOST", None)
    args = [binary, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port), "--username", "reviewer@labelq.test", "--password", "labelq-review"]
    args += ["--user-token", TOKEN, "--enable-legacy-api-token"]
    proc = subprocess.Popen(args, env=env, stdout=open(data / "server.log", "w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {proc.returncode}: see {data / 'server.log'}")
        time.sleep(0.5)
    raise RuntimeError("Label Studio did not answer /health in 5 minutes")


def main() -> None:
    from labelq.pipeline import audit
    from labelq.relabel.review import apply_reviews, export_review
    from labelq.sql import run_query
    from labelq.store import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label-studio", default=shutil.which("label-studio") or "/work/lsvenv/bin/label-studio")
    args = ap.parse_args()
    if not Path(args.label_studio).exists():
        sys.exit(f"no Label Studio at {args.label_studio}: install it (see this script's docstring) or pass --label-studio")
    steps, t = [], time.perf_counter()

    def done(step: str, detail: str) -> None:
        nonlocal t
        steps.append({"step": step, "seconds": round(time.perf_counter() - t, 1), "detail": detail})
        t = time.perf_counter()

    work = Path(tempfile.mkdtemp(prefix="labelq-ls-"))
    import labelq

    digits = labelq.load_examples("digits")
    truth = digits["label"].to_numpy()
    rng = np.random.default_rng(5)
    flip = rng.random(len(truth)) < 0.1
    noisy = np.where(flip, (truth + rng.integers(1, 10, len(truth))) % 10, truth)
    import pyarrow as pa

    from labelq import schema as S

    pq.write_table(S.replace_columns(digits, {S.LABEL: pa.array(noisy, pa.int64())}), work / "noisy.parquet")
    store = Store(work / "store")
    v = audit(source=str(work / "noisy.parquet"), name="dg", store=str(store.root), model="logreg").version
    tasks_file, n = export_review(v, work / "tasks.json", "label-studio", limit=20)
    config = (work / "tasks.json.label_config.xml").read_text()
    done("labelq audit + review export", f"{n} tasks, {v.tag}")

    port = free_port()
    (work / "ls").mkdir()
    proc = start(args.label_studio, work / "ls", port)
    try:
        done("start Label Studio", f"label-studio {version_of(args.label_studio)} on 127.0.0.1:{port}")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {TOKEN}"}, timeout=60)
        project = api.post("/api/projects", json={"title": "labelq review", "label_config": config})
        project.raise_for_status()
        pid = project.json()["id"]
        done("1. create project", f"project {pid} with labelq's labeling config")
        imported = api.post(f"/api/projects/{pid}/import", json=json.loads(tasks_file.read_text()))
        imported.raise_for_status()
        done("2. import tasks", f"{imported.json().get('task_count')} tasks")
        tasks = api.get("/api/tasks", params={"project": pid, "page_size": 1000}).json()["tasks"]
        names = [str(i) for i in range(10)]
        answers = {}
        for task in tasks:
            rid = task["data"]["labelq_id"]
            label = names[truth[int(rid.split("-")[-1])]]
            answers[rid] = label
            body = {"result": [{"from_name": "label", "to_name": "item", "type": "choices", "value": {"choices": [label]}}], "lead_time": 1.0}
            api.post(f"/api/tasks/{task['id']}/annotations", json=body).raise_for_status()
        done("3. annotate through the API", f"{len(tasks)} annotations")
        export = api.get(f"/api/projects/{pid}/export", params={"exportType": "JSON"})
        export.raise_for_status()
        (work / "export.json").write_bytes(export.content)
        done("4. export", f"{len(export.json())} tasks, {len(export.content):,} bytes")
    finally:
        proc.terminate()
        proc.wait(30)
    result = apply_reviews("dg", work / "export.json", str(store.root))
    got = run_query(store, "dg", "SELECT id, labels, reviewer FROM latest WHERE label_source = 'review'").to_pylist()
    right = sum([names[c] for c in r["labels"]] == [answers[r["id"]]] for r in got)
    done(
        "5. labelq review import",
        f"{result.version.tag}: {result.n_reviews} reviews, {result.changed} labels changed; DuckDB reads {right}/{len(got)} as answered",
    )
    print_table(steps, "Label Studio round trip (digits, 10% flipped labels)")
    if right != len(answers) or len(got) != len(answers):
        sys.exit("the round trip lost or changed answers")
    shutil.rmtree(work, ignore_errors=True)


def version_of(binary: str) -> str:
    out = subprocess.run([str(Path(binary).parent / "python"), "-c", "import label_studio; print(label_studio.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
