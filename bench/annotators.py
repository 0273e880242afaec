"""Several annotators a row: how well each consensus method recovers what ten people said, and whether a
bad annotator ranks last. Real ratings: the VADER lexicon (PyPI ``vadersentiment``: 10 human ratings,
-4..4, for each of 7,506 distinct words), bucketed into negative (< 0) / neutral (0) / positive (> 0).

Truth is the majority of all 10 ratings. Each word keeps 3 of its 10 ratings at random (a rating's
position is its annotator, ``rater0..9``), and a planted annotator labels 40% of the words:

- ``none``: no planted annotator;
- ``random``: a uniformly random class;
- ``adversarial``: always a class other than the truth (positive <-> negative, neutral -> positive).

``labelq audit --annotators annotator --model embed-logreg`` runs on the long-form Parquet (the model
trains on the majority labels, 5 folds). On its pred_probs, in the same run: majority vote, Dawid-Skene,
labelq's CROWDLAB (the published consensus) and cleanlab's ``get_label_quality_multiannotator`` (the
reference). Columns: consensus accuracy against the truth; the planted annotator's rank by each method's
annotator score (1 = worst, of 11); AUROC of the consensus quality score for "the consensus is wrong".
A last table times CROWDLAB and cleanlab on a sparse crowd (50,000 rows, 1,000 annotators, 3 labels a row).

    python bench/annotators.py [--store /tmp/labelq-annotators]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import print_table, vader_lexicon  # noqa: E402

CLASSES = ["negative", "neutral", "positive"]


def lexicon() -> tuple[list[str], np.ndarray]:
    """The lexicon's words and their 10 ratings as classes: negative 0, neutral 1, positive 2."""
    words, ratings = vader_lexicon()
    return words, np.sign(ratings) + 1


def plant(ratings: np.ndarray, truth: np.ndarray, mode: str, seed: int = 0) -> np.ndarray:
    """Items x 11 annotators (NaN: no label): 3 kept ratings a word, and the planted annotator (column 10)."""
    rng = np.random.default_rng(seed)
    wide = np.full((len(ratings), 11), np.nan)
    for i in range(len(ratings)):
        keep = rng.choice(10, 3, replace=False)
        wide[i, keep] = ratings[i, keep]
    if mode != "none":
        rows = rng.choice(len(ratings), int(0.4 * len(ratings)), replace=False)
        wide[rows, 10] = rng.integers(0, 3, len(rows)) if mode == "random" else np.array([2, 2, 0])[truth[rows]]
    return wide


def auroc(score: np.ndarray, wrong: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(wrong, -score)) if 0 < wrong.sum() < len(wrong) else float("nan")


def rank_of_planted(score: np.ndarray) -> int:
    return int(np.argsort(np.argsort(score))[10]) + 1


def scenario(mode: str, words: list[str], ratings: np.ndarray, truth: np.ndarray, store: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from cleanlab.multiannotator import get_label_quality_multiannotator

    from labelq import audit
    from labelq.crowd import Annotations, dawid_skene, majority_vote
    from labelq.ingest import IngestOptions
    from labelq.pipeline import AuditConfig
    from labelq.predict import PredictOptions

    wide = plant(ratings, truth, mode)
    names = [f"rater{a}" for a in range(10)] + ["planted"]
    item, who = np.nonzero(~np.isnan(wide))
    table = pa.table(
        {
            "id": pa.array(np.asarray(words, dtype=object)[item], pa.string()),
            "text": pa.array(np.asarray(words, dtype=object)[item], pa.string()),
            "annotator": pa.array(np.asarray(names, dtype=object)[who], pa.string()),
            "label": pa.array(np.asarray(CLASSES, dtype=object)[wide[item, who].astype(int)], pa.string()),
        }
    )
    src = store / f"vader-{mode}.parquet"
    pq.write_table(table, src)
    t0 = time.perf_counter()
    cfg = AuditConfig(
        source=str(src), name=f"vader-{mode}", store=str(store), ingest=IngestOptions(annotators=["annotator"]), predict=PredictOptions(model="embed-logreg")
    )
    result = audit(cfg)
    seconds = time.perf_counter() - t0
    v = result.version
    probs = np.stack(v.read_table("pred_probs")["pred_probs"].to_numpy(zero_copy_only=False))
    consensus = v.read_table("consensus")
    people = {r["annotator"]: r for r in v.read_table("annotators").to_pylist()}
    present = [n for n in names if n in people]
    ann = Annotations.from_wide(wide[:, [names.index(n) for n in present]], present, 3)
    mv = majority_vote(ann, probs)
    post, conf = dawid_skene(ann)
    ds_acc = np.einsum("k,akk->a", post.mean(axis=0), conf)
    agree_mv = ann.per_annotator(ann.label == mv[ann.item])
    ref = get_label_quality_multiannotator(ann.wide(), probs, verbose=False)
    ref_q = ref["label_quality"]
    ref_stats = ref["annotator_stats"].loc[np.arange(len(present))]
    ours = consensus["consensus_label"].to_numpy()
    ours_q = consensus["consensus_quality"].to_numpy()
    quality = np.array([people[n]["quality"] for n in present])
    has_planted = len(present) == 11
    rows = [
        ("majority vote (of 3-4 labels)", mv, None, agree_mv),
        ("Dawid-Skene", post.argmax(axis=1), post.max(axis=1), ds_acc),
        ("labelq CROWDLAB", ours, ours_q, quality),
        (
            "cleanlab get_label_quality_multiannotator",
            ref_q["consensus_label"].to_numpy(),
            ref_q["consensus_quality_score"].to_numpy(),
            ref_stats["annotator_quality"].to_numpy(),
        ),
    ]
    return [
        {
            "planted annotator": mode,
            "method": name,
            "consensus accuracy": round(float((label == truth).mean()), 4),
            "planted annotator's rank (1 = worst of 11)": rank_of_planted(score) if has_planted else "-",
            "AUROC of quality for a wrong consensus": "-" if q is None else round(auroc(q, label != truth), 3),
            "audit s": round(seconds, 1) if name == "labelq CROWDLAB" else "",
        }
        for name, label, q, score in rows
    ]


def scale_row(n: int = 50_000, m: int = 1000, per_row: int = 3, seed: int = 0) -> list[dict]:
    from cleanlab.multiannotator import get_label_quality_multiannotator

    from labelq.crowd import Annotations, crowdlab

    rng = np.random.default_rng(seed)
    k = 5
    truth = rng.integers(0, k, n)
    item = np.repeat(np.arange(n), per_row)
    who = np.concatenate([rng.choice(m, per_row, replace=False) for _ in range(n)])
    skill = rng.uniform(0.5, 0.95, m)
    right = rng.random(len(item)) < skill[who]
    label = np.where(right, truth[item], rng.integers(0, k, len(item)))
    probs = rng.dirichlet(np.ones(k), n) * 0.5 + 0.5 * np.eye(k)[truth]
    ann = Annotations(item, who, label, n, [str(a) for a in range(m)], k)
    out = []
    for name, fn in (
        ("labelq CROWDLAB (long form)", lambda: crowdlab(ann, probs)),
        ("cleanlab (items x annotators)", lambda: get_label_quality_multiannotator(ann.wide(), probs, verbose=False)),
    ):
        tracemalloc.start()
        t = time.perf_counter()
        fn()
        sec = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        out.append(
            {"rows x annotators (labels a row)": f"{n:,} x {m:,} ({per_row})", "method": name, "s": round(sec, 2), "peak MiB (tracemalloc)": round(peak, 1)}
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="/tmp/labelq-annotators")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    store = Path(a.store)
    store.mkdir(parents=True, exist_ok=True)
    from labelq.crowd import Annotations, majority_vote

    words, ratings = lexicon()
    truth = majority_vote(Annotations.from_wide(ratings.astype(float), None, 3))
    rows = []
    for mode in ("none", "random", "adversarial"):
        rows += scenario(mode, words, ratings, truth, store)
    print_table(rows, f"VADER lexicon, {len(words):,} words: 3 of 10 ratings a word kept, truth = the majority of all 10")
    print_table(scale_row(), "CROWDLAB on a sparse crowd: time and peak memory, same inputs")


if __name__ == "__main__":
    main()
