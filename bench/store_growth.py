"""Store growth: what ten re-labels and an unchanged re-audit add to a store (issue 13, item 3).

Audits Fashion-MNIST (70,000 images; a quick model by default, the store's behaviour does not depend
on it), re-labels the latest version ten times (coverage 0.90 .. 0.99), audits the unchanged source
again, and prints the bytes on disk after each step (hard-linked files counted once) beside the size
of one version.

    python bench/store_growth.py                      # logistic regression, 3 folds
    python bench/store_growth.py --model cnn --folds 5
    python bench/store_growth.py --pred-probs P.npy   # given pred_probs (N x K .npy, the source's row order): minutes, not 13
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="fashion-mnist")
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--relabels", type=int, default=10)
    ap.add_argument("--pred-probs", default=None, help="Audit with these pred_probs (.npy) instead of training --model.")
    args = ap.parse_args()

    from labelq.pipeline import AuditConfig, audit
    from labelq.relabel import relabel
    from labelq.store import Store, disk_bytes

    with tempfile.TemporaryDirectory() as root:
        cfg = AuditConfig.from_options(source=args.source, name="ds", store=root, model=args.model, n_folds=args.folds, pred_probs=args.pred_probs)
        store = Store(root)
        rows: list[dict] = []

        def step(label: str, run) -> None:
            """Run one step; record the bytes of all versions after it (hard links counted once)."""
            t0 = time.perf_counter()
            run()
            after = disk_bytes(*(v.path for v in store.versions("ds")))
            added = after - (rows[-1]["_bytes"] if rows else 0)
            rows.append(
                {
                    "step": label,
                    "versions": len(store.versions("ds")),
                    "versions MB": round(after / 1e6, 2),
                    "added MB": round(added / 1e6, 3),
                    "_bytes": after,
                    "s": round(time.perf_counter() - t0, 1),
                }
            )

        step("audit", lambda: audit(cfg))
        one = rows[0]["_bytes"]
        for i in range(args.relabels):
            coverage = round(0.90 + 0.01 * i, 2)
            step(f"relabel {i + 1} (coverage {coverage:.2f})", lambda coverage=coverage: relabel(name="ds", store=root, coverage=coverage))
        total = rows[-1]["_bytes"] - one
        step("re-audit (the latest is a re-label: publishes, sharing files)", lambda: audit(cfg))
        step("unchanged re-audit (a history record, no version)", lambda: audit(cfg))
        for r in rows:
            r["added, % of one version"] = round(100 * r["added MB"] * 1e6 / one, 2)
            del r["_bytes"]
    print_table(
        rows,
        f"{args.source}: versions on disk ({f'given {args.pred_probs}' if args.pred_probs else f'{args.model}, {args.folds} folds'}); one version = {one / 1e6:.1f} MB; {args.relabels} re-labels added {total / 1e6:.2f} MB = {100 * total / one:.1f}% of one version",
    )


if __name__ == "__main__":
    main()
