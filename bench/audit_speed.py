"""Wall time, peak memory and out-of-sample accuracy of a full audit (`labelq audit --no-prefect`) per built-in dataset.

Each audit runs as its own `labelq` process into a fresh store; peak memory is that process's
maximum resident set. Out-of-sample accuracy is measured against the given labels.

    python bench/audit_speed.py [digits fine-foods spamassassin fashion-mnist]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402

WRAPPER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
    "from labelq.cli import main\n"
    "sys.argv = ['labelq', *sys.argv[1:]]\n"
    "main()\n"
)


def audit(source: str, extra: list[str]) -> dict:
    """One `labelq audit` in a child process that reports its own peak resident memory at exit."""
    with tempfile.TemporaryDirectory() as store:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, "audit", source, "--store", store, "--no-prefect", "-q", "--top", "0", *extra], capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"labelq audit {source} failed:\n{proc.stdout}\n{proc.stderr}")
        peak = int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS_KIB")))
        manifest = json.loads(next(Path(store).glob("datasets/*/v0001/manifest.json")).read_text())
    return {
        "dataset": source,
        "rows": manifest["rows"],
        "model": manifest["model"],
        "oos_accuracy": manifest["out_of_sample_accuracy"],
        "flagged": manifest["n_label_issues"],
        "near_duplicate_rows": (manifest.get("near_duplicates") or {}).get("near_duplicate_rows"),
        "outlier_rows": (manifest.get("near_duplicates") or {}).get("outlier_rows"),
        "near_duplicate_check_s": (manifest.get("near_duplicates") or {}).get("seconds"),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(peak / 1024),
    }


def main() -> None:
    sources = sys.argv[1:] or ["digits", "fine-foods", "spamassassin", "fashion-mnist"]
    rows = []
    for s in sources:
        r = audit(s, [])
        rows.append(r)
        print(r, flush=True)
    print_table(rows, "Full audit per built-in dataset (labelq audit --no-prefect, 2-core machine)")


if __name__ == "__main__":
    main()
