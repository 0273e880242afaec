"""What ``--detector ensemble`` (the default for images since it became ``auto``'s choice there) costs over an audit
with confident learning, end to end.

Each audit runs as its own ``labelq audit --no-prefect`` process into a fresh store (``audit_speed.audit``):
wall time and peak resident memory of the whole audit, default model and settings, near-duplicate check on.

    python bench/ensemble_cost.py [digits fashion-mnist]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402
from audit_speed import audit  # noqa: E402


def main() -> None:
    rows = []
    for source in sys.argv[1:] or ["digits", "fashion-mnist"]:
        base = audit(source, ["--detector", "confident_learning"])
        ens = audit(source, ["--detector", "ensemble"])
        for label, r in (("confident_learning", base), ("ensemble", ens)):
            rows.append(
                {"dataset": source, "detector": label, "rows": r["rows"], "flagged": r["flagged"], "wall_s": r["wall_s"], "peak_rss_mib": r["peak_rss_mib"]}
            )
        rows[-1]["x confident learning (time)"] = round(ens["wall_s"] / base["wall_s"], 2)
        rows[-1]["x confident learning (memory)"] = round(ens["peak_rss_mib"] / base["peak_rss_mib"], 2)
        print(rows[-2:], flush=True)
    print_table(rows, "--detector ensemble vs confident learning (labelq audit --no-prefect, 2 cores)")


if __name__ == "__main__":
    main()
