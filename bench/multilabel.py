"""Multi-label audits on Debian's packages and their Debtags, with tag errors planted at known rows.

The data: every package APT's lists carry with Debtags (about 29,000), its name, section and one-line
description, and its tags on at least 1% of the packages (50 tags). A first audit's unflagged rows are
the clean base (Debtags carry many real errors of their own, see docs/auditing.md); in 5% of the base one
tag is removed (half the planted rows) or a tag the package lacks is added (the other half). Then,
each in its own process, with wall time and peak memory:

- ``labelq``: ``labelq.audit`` of the planted rows (TF-IDF + logistic regression one-vs-rest, 5 folds,
  cleanlab's multi-label filter, the near-duplicate check, publish, report);
- ``scikit-learn + cleanlab``: the same model through ``cross_val_predict`` of a ``OneVsRestClassifier``
  (``KFold``, 5 folds) and cleanlab's ``multilabel_classification.filter.find_label_issues``: what a
  user writes without labelq (no check, no store);
- ``tag != model at 0.5``: a row flagged when any tag's out-of-sample probability (labelq's) is on the
  other side of 0.5 from the given tag, the naive rule.

Printed: rows flagged, recall and precision of the flagged rows against the planted rows, the share of
planted rows whose planted tag is named (missing for a removed tag, extra for an added one: for the
naive rule, the tag on the other side of 0.5), and then ``labelq relabel``: planted rows corrected, and
the share of them given back their original tags.

    python bench/multilabel.py [--rows N] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, print_table  # noqa: E402


def make_planted(folder: str, rows: int | None, seed: int) -> dict:
    """The clean base and its planted copy as Parquet in ``folder``; the truth as JSON-able lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import labelq
    from labelq.ingest import load_raw

    table = load_raw("debtags").table
    if rows:
        table = table.take(np.sort(np.random.default_rng(seed).choice(table.num_rows, rows, replace=False)))
    pq.write_table(table, f"{folder}/all.parquet")
    first = labelq.audit(source=f"{folder}/all.parquet", name="first", store=f"{folder}/first", label_column="tags", data_checks=False)
    flagged = first.version.read(columns=["is_label_issue"])["is_label_issue"].to_numpy(zero_copy_only=False)
    base = table.filter(pa.array(~flagged))
    counts: dict[str, int] = {}
    for row in base["tags"].to_pylist():
        for t in row:
            counts[t] = counts.get(t, 0) + 1
    names = sorted(t for t, c in counts.items() if c >= 20)
    original = [[t for t in row if t in names] for row in base["tags"].to_pylist()]
    tags = [list(row) for row in original]
    rng = np.random.default_rng(seed + 1)
    planted = rng.choice(base.num_rows, base.num_rows // 20, replace=False)
    truth = []
    for j, i in enumerate(planted.tolist()):
        if j % 2 == 0 and tags[i]:
            tag = str(rng.choice(tags[i]))
            tags[i].remove(tag)
            truth.append((i, "missing", tag))
        else:
            tag = str(rng.choice([t for t in names if t not in tags[i]]))
            tags[i].append(tag)
            truth.append((i, "extra", tag))
    pq.write_table(base.set_column(base.column_names.index("tags"), "tags", pa.array(tags, pa.list_(pa.string()))), f"{folder}/planted.parquet")
    return {"rows": base.num_rows, "first_flagged": int(flagged.sum()), "truth": truth, "original": original}


def run_labelq(folder: str) -> dict:
    import labelq

    v = labelq.audit(source=f"{folder}/planted.parquet", name="debtags", store=f"{folder}/store", label_column="tags").version
    rows = v.read(columns=["is_label_issue", "missing_tags", "extra_tags"])
    names = v.manifest().class_names
    return {
        "flagged": rows["is_label_issue"].to_numpy(zero_copy_only=False).tolist(),
        "missing": [[names[t] for t in r] for r in rows["missing_tags"].to_pylist()],
        "extra": [[names[t] for t in r] for r in rows["extra_tags"].to_pylist()],
        "tag_accuracy": v.manifest().audit.out_of_sample_accuracy,
    }


def run_reference(folder: str) -> dict:
    """scikit-learn's cross_val_predict of the same model, one-vs-rest, and cleanlab's multi-label filter."""
    import pyarrow.parquet as pq
    from cleanlab.multilabel_classification.filter import find_label_issues
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MultiLabelBinarizer

    table = pq.read_table(f"{folder}/planted.parquet")
    binarizer = MultiLabelBinarizer()
    y = binarizer.fit_transform(table["tags"].to_pylist())
    model = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=200_000, dtype=np.float32),
        OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=2000)),
    )
    probs = cross_val_predict(model, np.asarray(table["text"].to_pylist(), dtype=object), y, cv=KFold(5, shuffle=True, random_state=0), method="predict_proba")
    flagged = find_label_issues([np.flatnonzero(r).tolist() for r in y], probs, n_jobs=1)  # its worker pool needs fork; this child is spawned
    return {"flagged": flagged.tolist(), "tag_accuracy": float(((probs >= 0.5) == y).mean())}


def run_relabel(folder: str) -> dict:
    import labelq

    v = labelq.relabel(name="debtags", store=f"{folder}/store").version
    names = v.manifest().class_names
    return {"corrected": [None if c is None else [names[t] for t in c] for c in v.read(columns=["corrected_label"])["corrected_label"].to_pylist()]}


def naive(folder: str) -> dict:
    """Any tag on the other side of 0.5 from labelq's out-of-sample probability."""
    from labelq.multilabel import tag_matrix
    from labelq.store import Store

    v = Store(f"{folder}/store").version("debtags", 1)
    names = v.manifest().class_names
    probs = np.asarray(v.read_table("pred_probs")["pred_probs"].to_pylist())
    tags = tag_matrix(v.read(columns=["label"])["label"], len(names))
    pred = probs >= 0.5
    return {
        "flagged": (pred != tags).any(axis=1).tolist(),
        "missing": [[names[t] for t in np.flatnonzero(r)] for r in pred & ~tags],
        "extra": [[names[t] for t in np.flatnonzero(r)] for r in ~pred & tags],
    }


def scores(out: dict, truth: list, n: int) -> dict:
    flagged = np.asarray(out["flagged"])
    planted = np.zeros(n, bool)
    planted[[i for i, _, _ in truth]] = True
    row = {"flagged": int(flagged.sum()), "recall": flagged[planted].mean(), "precision": planted[flagged].mean() if flagged.any() else 0.0}
    if "missing" in out:
        row["planted tag named"] = float(np.mean([tag in out[kind][i] for i, kind, tag in truth]))
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=None, help="a random sample of the packages (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    offline_env()
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        data = make_planted(folder, a.rows, a.seed)
        n, truth = data["rows"], data["truth"]
        print(
            f"clean base: {n:,} rows (a first audit flagged {data['first_flagged']:,}); planted: {len(truth):,} rows; {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        ours = measured(run_labelq, folder)
        ref = measured(run_reference, folder)
        table = [
            {
                "method": "labelq audit",
                **scores(ours, truth, n),
                "OOS tag accuracy": ours["tag_accuracy"],
                "s": ours["wall_s"],
                "peak MiB": ours["peak_rss_mib"],
            },
            {
                "method": "scikit-learn + cleanlab",
                **scores(ref, truth, n),
                "OOS tag accuracy": ref["tag_accuracy"],
                "s": ref["wall_s"],
                "peak MiB": ref["peak_rss_mib"],
            },
            {"method": "tag != model at 0.5 (labelq's pred_probs)", **scores(naive(folder), truth, n)},
        ]
        print_table(table, f"Debtags, {n:,} packages, {len(truth)} planted tag errors")
        fixed = measured(run_relabel, folder)
        corrected = fixed["corrected"]
        rows = [i for i, _, _ in truth if corrected[i] is not None]
        back = [sorted(corrected[i]) == sorted(data["original"][i]) for i in rows]
        others = sum(c is not None for c in corrected) - len(rows)
        print_table(
            [
                {
                    "planted rows corrected": f"{len(rows)} of {len(truth)}",
                    "given back their original tags": float(np.mean(back)) if back else None,
                    "other rows corrected": others,
                    "s": fixed["wall_s"],
                }
            ],
            "labelq relabel (--fix-confidence 0.9)",
        )


if __name__ == "__main__":
    main()
