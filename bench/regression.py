"""Label errors in a regression target: labelq's detection core (``labelq.detect.regression``) beside cleanlab's
``CleanLearning`` for regression and a plain residual rule, on real data with planted errors.

Data (real, no hub):
- ``vader``: the VADER lexicon (PyPI ``vadersentiment``): 7,506 distinct words, each with the mean of 10 human
  ratings (-4..4); the inputs are the words' MiniLM sentence embeddings (the ``embed`` extra); ridge regression.
- ``diabetes``: scikit-learn's diabetes table, 442 patients, 10 features, a disease-progression score; ridge.
- ``tweets``, ``amazon``: VADER's sentence sets (the sdist of PyPI ``vadersentiment`` 3.3.2,
  ``additional_resources/hutto_ICWSM_2014.tar.gz``, fetched once with ``pip download`` into ``--cache``): 4,200
  tweets and 3,708 product-review snippets, each with the mean of about 20 human ratings (-4..4); TF-IDF (word 1-2
  grams) reduced to 256 dimensions by truncated SVD (cleanlab's ``CleanLearning`` takes no sparse matrix) + ridge.

Errors planted in 5% of the rows (seeded), two ways:
- ``shift``: the value moves by 3 standard deviations of the target, up or down at random;
- ``swap``: pairs of rows exchange their values (a value from another row, often close: harder).

Out-of-sample predictions: 5-fold ``cross_val_predict`` on the noisy values; the per-row spread: a second 5-fold
model of the absolute out-of-fold residuals (ridge on the same inputs). On the same predictions:
- labelq: the mixture's flags with the global robust spread, and with the per-row spread (scores ``outre``,
  cleanlab's, and ``spread``);
- cleanlab ``get_label_quality_scores`` (``outre``, ``residual``): scores only (AP; they flag nothing);
- a residual rule: flag ``|residual| > 2`` standard deviations of the residuals.
And cleanlab's ``CleanLearning(Ridge()).find_label_issues(X, y)``, which runs its own cross-validation and refits
to choose how many rows to flag. And the whole ``labelq audit`` (``--task`` inferred, the kind's default model:
``hgb-regressor`` on tables, ``tfidf-ridge`` on texts, ``embed-ridge`` on the lexicon's single words) on the same
noisy values, its flags against the planted rows. F1 of the flags, AP of the scores against the planted rows,
seconds and tracemalloc's peak MiB of each.

    python bench/regression.py [--data vader,diabetes,tweets,amazon] [--seed 0] [--cache /tmp/labelq-bench-cache]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import offline_env, print_table, timed, vader_lexicon  # noqa: E402


def load(name: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, values)."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        return d.data, d.target.astype(np.float64)
    if name == "vader":
        from labelq.predict.embeddings import embed_inputs, encoder_for

        words, ratings = vader_lexicon()
        return embed_inputs(np.asarray(words, dtype=object), encoder_for("text")), ratings.mean(axis=1).astype(np.float64)
    if name in SENTENCE_SETS:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts, means = vader_sentences(name, cache)
        tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit_transform(texts)
        return TruncatedSVD(256, random_state=0).fit_transform(tfidf), means  # dense: cleanlab's CleanLearning takes no sparse matrix
    raise SystemExit(f"unknown data {name}")


SENTENCE_SETS = {"tweets": "tweets_GroundTruth.txt", "amazon": "amazonReviewSnippets_GroundTruth.txt"}


def vader_sentences(name: str, cache: Path) -> tuple[list[str], np.ndarray]:
    """A VADER sentence set: its texts and the mean human rating of each (``id<TAB>mean<TAB>text`` lines)."""
    import subprocess
    import tarfile

    sdist = cache / "vaderSentiment-3.3.2.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(cache), "vadersentiment==3.3.2"], check=True
        )
    with tarfile.open(sdist) as outer:
        inner = tarfile.open(fileobj=outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"))
        raw = inner.extractfile(f"hutto_ICWSM_2014/{SENTENCE_SETS[name]}").read().decode("utf-8", errors="replace")
    texts, means = [], []
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            means.append(float(parts[1]))
            texts.append("\t".join(parts[2:]))
    return texts, np.array(means)


def plant(y: np.ndarray, how: str, seed: int, share: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = rng.choice(n, int(share * n) // 2 * 2, replace=False)
    noisy = y.copy()
    if how == "shift":
        noisy[rows] += rng.choice([-1.0, 1.0], len(rows)) * 3 * y.std()
    else:
        a, b = rows[::2], rows[1::2]
        noisy[a], noisy[b] = y[b], y[a]
    truth = noisy != y
    return noisy, truth


def cell(name: str, X: np.ndarray, y: np.ndarray, how: str, seed: int, cache: Path) -> list[dict]:
    """One data set and one way of planting: every method's row."""
    from cleanlab.regression.learn import CleanLearning
    from cleanlab.regression.rank import get_label_quality_scores
    from sklearn.linear_model import Ridge
    from sklearn.metrics import average_precision_score, f1_score
    from sklearn.model_selection import KFold, cross_val_predict

    from labelq.detect.regression import detect_regression

    noisy, truth = plant(y, how, seed)
    folds = KFold(5, shuffle=True, random_state=seed)

    def predictions():
        pred = cross_val_predict(Ridge(), X, noisy, cv=folds)
        return pred, np.maximum(cross_val_predict(Ridge(), X, np.abs(noisy - pred), cv=folds), 1e-6)

    (pred, spread), cv_s, _ = timed(predictions)
    base = {"data": name, "errors": f"{how} 5%", "rows": len(y), "cv_s": cv_s}
    rows = []

    def row(method, flags, score, seconds, peak):
        rows.append(
            {
                **base,
                "method": method,
                "flagged": "-" if flags is None else int(flags.sum()),
                "F1": "-" if flags is None else round(float(f1_score(truth, flags)), 3),
                "AP": round(float(average_precision_score(truth, -score)), 3),
                "s": seconds,
                "peak MiB": peak,
            }
        )

    det, s, m = timed(lambda: detect_regression(noisy, pred))
    row("labelq (robust spread)", det.is_issue, det.score, s, m)
    det, s, m = timed(lambda: detect_regression(noisy, pred, spread))
    row("labelq (per-row spread from a model of |residual|)", det.is_issue, det.score, s, m)
    det, s, m = timed(lambda: detect_regression(noisy, pred, method="outre"))
    row("labelq (robust spread, cleanlab's outre score)", det.is_issue, det.score, s, m)
    score, s, m = timed(lambda: get_label_quality_scores(noisy, pred, method="outre"))
    row("cleanlab get_label_quality_scores (outre)", None, score, s, m)
    score, s, m = timed(lambda: get_label_quality_scores(noisy, pred, method="residual"))
    row("cleanlab get_label_quality_scores (residual)", None, score, s, m)
    res = noisy - pred
    row("residual rule (|r| > 2 sd)", np.abs(res) > 2 * res.std(), -np.abs(res), 0.0, 0.0)
    found, s, m = timed(lambda: CleanLearning(Ridge(), seed=seed).find_label_issues(X, noisy))
    row("cleanlab CleanLearning(Ridge()).find_label_issues", found["is_label_issue"].to_numpy(), found["label_quality"].to_numpy(), s, m)
    audited, s, m = timed(lambda: audit_planted(name, noisy, seed, cache))
    row(f"labelq audit ({audited[2]}, whole pipeline)", audited[0], audited[1], s, m)
    return rows


def audit_planted(name: str, noisy: np.ndarray, seed: int, cache: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``labelq audit`` on the noisy values with the data's own inputs: (flags, label scores, model)."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelq import schema as S
    from labelq.pipeline import AuditConfig, audit

    options = {"data_checks": False, "seed": seed}
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        d = load_diabetes()
        table = pa.table({**{n: d.data[:, j] for j, n in enumerate(d.feature_names)}, "target": noisy})
    else:
        texts = vader_lexicon()[0] if name == "vader" else vader_sentences(name, cache)[0]
        table = pa.table({"text": texts, "target": noisy})
        options |= {"text_column": "text", **({"model": "embed-ridge"} if name == "vader" else {})}
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(table.append_column("id", pa.array([f"r{i}" for i in range(len(noisy))])), f"{tmp}/{name}.parquet")
        result = audit(AuditConfig.from_options(f"{tmp}/{name}.parquet", store=f"{tmp}/store", label_column="target", **options))
        rows = result.version.read(columns=[S.IS_LABEL_ISSUE, S.LABEL_SCORE])
        return rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False), rows[S.LABEL_SCORE].to_numpy(), result.version.manifest().audit.model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="vader,diabetes,tweets,amazon")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="/tmp/labelq-bench-cache", help="where the vadersentiment sdist is kept")
    a = ap.parse_args()
    offline_env()
    rows = []
    for name in a.data.split(","):
        X, y = load(name, Path(a.cache))
        for how in ("shift", "swap"):
            rows += cell(name, X, y, how, a.seed, Path(a.cache))
            print(rows[-1], file=sys.stderr, flush=True)
    print_table(rows, "Regression label errors planted in 5% of the rows (F1 of the flags, AP of the scores)")


if __name__ == "__main__":
    main()
