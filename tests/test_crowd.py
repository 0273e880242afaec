"""Several annotators a row (``labelq.crowd``, ``--annotators``), on real ratings: the VADER lexicon
(PyPI ``vadersentiment``: 10 human ratings, -4..4, for each of 7,520 words), bucketed into
negative / neutral / positive. Each method is checked against its reference on the same inputs:
cleanlab's ``multiannotator`` (majority vote, CROWDLAB, ActiveLab), ``krippendorff``, statsmodels'
Fleiss' kappa and scikit-learn's Cohen's kappa."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import vader_lexicon

from labelq.cli import main
from labelq.crowd import Annotations, active_scores, agreement, best_temperature, crowdlab, dawid_skene, majority_vote
from labelq.errors import InputError
from labelq.ingest import IngestOptions, load_examples
from labelq.ingest.annotations import annotations_of
from labelq.store import Store

pytest.importorskip("vaderSentiment", reason="the VADER lexicon comes with PyPI vadersentiment (the test extra)")
CLASSES = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def lexicon() -> tuple[list[str], np.ndarray]:
    """The lexicon's words (first entry of the 14 listed twice) and their 10 ratings as classes 0/1/2."""
    words, _, ratings = vader_lexicon()
    return words, np.sign(ratings).astype(np.int64) + 1


@pytest.fixture(scope="module")
def sparse(lexicon):
    """3 of the 10 ratings of each word, kept at random, as 10 annotators (a rating's position), plus a planted
    annotator who answers at random on 3,000 words; pred_probs from a character n-gram model (5 folds)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    words, ratings = lexicon
    rng = np.random.default_rng(0)
    wide = np.full((len(words), 11), np.nan)
    for i in range(len(words)):
        keep = rng.choice(10, 3, replace=False)
        wide[i, keep] = ratings[i, keep]
    bad = rng.choice(len(words), 3000, replace=False)
    wide[bad, 10] = rng.integers(0, 3, len(bad))
    ann = Annotations.from_wide(wide, [f"rater{a}" for a in range(10)] + ["random"], 3)
    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(words)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), x, majority_vote(ann), cv=5, method="predict_proba")
    return ann, wide, probs


def test_majority_vote_and_crowdlab_equal_cleanlab(sparse):
    from cleanlab.multiannotator import get_label_quality_multiannotator, get_majority_vote_label

    ann, wide, probs = sparse
    assert (majority_vote(ann, probs) == get_majority_vote_label(wide, probs, verbose=False)).all()
    ours = crowdlab(ann, probs)
    ref = get_label_quality_multiannotator(wide, probs, verbose=False)
    quality = ref["label_quality"]
    assert (ours.consensus == quality["consensus_label"].to_numpy()).all()
    np.testing.assert_allclose(ours.quality, quality["consensus_quality_score"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.agreement, quality["annotator_agreement"].to_numpy(), atol=1e-12)
    stats = ref["annotator_stats"].loc[np.arange(11)]
    np.testing.assert_allclose(ours.annotator_quality, stats["annotator_quality"].to_numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.agreement_with_consensus, stats["agreement_with_consensus"].to_numpy(), atol=1e-12)
    assert np.argmin(ours.annotator_quality) == 10  # the planted random annotator ranks last
    detailed = ref["detailed_label_quality"].to_numpy()
    np.testing.assert_allclose(ours.label_quality, detailed[ann.item, ann.annotator], atol=1e-12)


def test_active_scores_equal_activelab_at_the_same_temperature(sparse, monkeypatch):
    """cleanlab's own temperature search miscounts float labels (``value_counts`` orders the counts by the
    values present, not by class), so both sides use ours; ours is checked against a brute-force search."""
    import cleanlab.multiannotator as cm

    ann, wide, probs = sparse
    t = best_temperature(ann, probs)
    monkeypatch.setattr(cm, "find_best_temp_scaler", lambda *a, **k: t)
    ref, _ = cm.get_active_learning_scores(wide, probs)
    np.testing.assert_allclose(active_scores(ann, probs), ref, atol=1e-12)
    shares = ann.counts() / ann.num_annotations[:, None]
    grid = np.linspace(0.05, 8, 800)

    def loss(temp):
        z = np.log(np.clip(probs, 1e-30, None)) / temp
        z -= z.max(axis=1, keepdims=True)
        return -(shares * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum(axis=1).mean()

    assert loss(t) <= min(loss(g) for g in grid) + 1e-3


def test_agreement_equals_krippendorff_fleiss_and_cohen(lexicon, sparse):
    krippendorff = pytest.importorskip("krippendorff")
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import fleiss_kappa

    ann, wide, _ = sparse
    got = agreement(ann)
    assert got.alpha == pytest.approx(krippendorff.alpha(reliability_data=wide.T, level_of_measurement="nominal"), abs=1e-12)
    assert got.fleiss is None  # rows have 3 or 4 annotators: Fleiss' kappa needs the same number on every row
    _, ratings = lexicon
    full = Annotations.from_wide(ratings.astype(float), None, 3)
    every = agreement(full)
    assert every.fleiss == pytest.approx(fleiss_kappa(full.counts()), abs=1e-12) and every.fleiss_rows == len(ratings)
    pair = next(p for p in every.pairs if (p["a"], p["b"]) == ("0", "1"))
    assert pair["rows"] == len(ratings) and pair["kappa"] == pytest.approx(cohen_kappa_score(ratings[:, 0], ratings[:, 1]), abs=1e-12)
    assert len(every.pairs) == 45


def test_dawid_skene_finds_the_random_annotator_and_the_ten_rater_consensus(lexicon, sparse):
    ann, _, _ = sparse
    _, ratings = lexicon
    post, conf = dawid_skene(ann)
    prior = post.mean(axis=0)
    accuracy = np.einsum("k,akk->a", prior, conf)
    assert np.argmin(accuracy) == 10 and accuracy[10] < 0.5 < accuracy[:10].min()
    truth = majority_vote(Annotations.from_wide(ratings.astype(float), None, 3))
    assert (post.argmax(axis=1) == truth).mean() > (majority_vote(ann) == truth).mean()  # the random annotator's votes count less


def _long_form(words, wide) -> pa.Table:
    rows = [
        {"id": w, "text": w, "annotator": f"rater{a}" if a < 10 else "random", "label": CLASSES[int(wide[i, a])]}
        for i, w in enumerate(words)
        for a in range(wide.shape[1])
        if not np.isnan(wide[i, a])
    ]
    return pa.Table.from_pylist(rows)


def test_three_layouts_read_the_same_annotations(tmp_path, lexicon, sparse):
    words, _ = lexicon
    _, wide, _ = sparse
    n = 400
    pq.write_table(_long_form(words[:n], wide[:n, :10]), tmp_path / "long.parquet")
    cols = {f"rater{a}": pa.array([None if np.isnan(v) else CLASSES[int(v)] for v in wide[:n, a]], pa.string()) for a in range(10)}
    pq.write_table(pa.table({"id": words[:n], "text": words[:n], **cols}), tmp_path / "wide.parquet")
    lists = [[CLASSES[int(v)] for v in row if not np.isnan(v)] for row in wide[:n, :10]]
    pq.write_table(pa.table({"id": words[:n], "text": words[:n], "ratings": lists}), tmp_path / "lists.parquet")

    long = load_examples(tmp_path / "long.parquet", IngestOptions(annotators=["annotator"]))
    by_column = load_examples(tmp_path / "wide.parquet", IngestOptions(annotators=[f"rater{a}" for a in range(10)]))
    by_list = load_examples(tmp_path / "lists.parquet", IngestOptions(annotators=["ratings"]))
    assert long["id"].to_pylist() == words[:n] == by_column["id"].to_pylist() == by_list["id"].to_pylist()
    assert "annotator" not in long.column_names and "rater0" not in by_column.column_names and "ratings" not in by_list.column_names
    a, b, c = (annotations_of(t, 3) for t in (long, by_column, by_list))
    assert (np.bincount(a.item) == np.bincount(b.item)).all() and (np.bincount(b.item) == np.bincount(c.item)).all()
    assert sorted(zip(a.item, np.asarray(a.annotators)[a.annotator], a.label)) == sorted(zip(b.item, np.asarray(b.annotators)[b.annotator], b.label))
    assert (long["label"].to_numpy() == majority_vote(a)).all() and (by_list["label"].to_numpy() == majority_vote(c)).all()
    assert c.annotators[:3] == ["#1", "#2", "#3"]


def test_bad_annotation_sources_are_refused_with_the_fix(tmp_path):
    dup = pa.table({"id": ["a", "a", "b"], "text": ["x", "x", "y"], "annotator": ["ann", "ann", "ann"], "label": ["p", "n", "p"]})
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(InputError, match="labelled row 0 more than once"):
        load_examples(tmp_path / "dup.parquet", IngestOptions(annotators=["annotator"]))
    pq.write_table(dup.drop_columns(["id"]), tmp_path / "noid.parquet")
    with pytest.raises(InputError, match="--id-column"):
        load_examples(tmp_path / "noid.parquet", IngestOptions(annotators=["annotator"]))
    pq.write_table(pa.table({"text": ["x", "y"], "a1": ["p", "n"], "a2": ["p", None], "label": ["p", "n"]}), tmp_path / "both.parquet")
    with pytest.raises(InputError, match="the label is the annotators' consensus"):
        load_examples(tmp_path / "both.parquet", IngestOptions(annotators=["a1", "a2"]))
    with pytest.raises(InputError, match="not in the data"):
        load_examples(tmp_path / "both.parquet", IngestOptions(annotators=["a3"]))


def test_audit_publishes_consensus_annotators_and_agreement(tmp_path, lexicon, sparse):
    """``labelq audit --annotators`` on 1,500 words of the lexicon in long form, with the planted random annotator."""
    words, _ = lexicon
    ann, wide, _ = sparse
    n = 1500
    pq.write_table(_long_form(words[:n], wide[:n]), tmp_path / "w.parquet")
    store = tmp_path / "store"
    args = ["audit", str(tmp_path / "w.parquet"), "--annotators", "annotator", "--store", str(store), "--no-prefect", "--no-data-checks"]
    out = CliRunner().invoke(main, args)  # single words: TF-IDF, the text default, finds no word in two texts
    assert out.exit_code == 2 and "use --model embed-logreg" in out.output, out.output
    out = CliRunner().invoke(main, [*args, "--model", "embed-logreg"])
    assert out.exit_code == 0, out.output
    assert "annotators: 11 annotators gave" in out.output and "Krippendorff's alpha" in out.output
    v = Store(store).version("w")
    crowd = v.manifest().audit.crowd
    assert crowd["annotators"] == 11 and crowd["annotations"] == int((~np.isnan(wide[:n])).sum())
    assert {"consensus.parquet", "annotators.parquet", "annotator_pairs.parquet"} <= {p.name for p in v.path.iterdir()}
    rows = v.read(columns=["id", "annotations"])
    assert rows.num_rows == n and len(rows["annotations"][0].as_py()) == int((~np.isnan(wide[0])).sum())  # nothing of the source is lost
    from labelq.sql import run_query

    worst = run_query(Store(store), "w", "SELECT annotator FROM annotators ORDER BY quality LIMIT 1").to_pylist()
    assert worst == [{"annotator": "random"}]
    c = run_query(Store(store), "w", "SELECT count(*) AS n, count(*) FILTER (WHERE consensus_name IS NULL) AS unnamed FROM consensus").to_pylist()[0]
    assert c == {"n": n, "unnamed": 0}
    pairs = run_query(Store(store), "w", "SELECT min(rows) AS least FROM annotator_pairs").to_pylist()[0]
    assert pairs["least"] >= 1
    html = (v.path.parent / "reports" / f"{v.tag}.html").read_text()
    assert "<h2>Annotators</h2>" in html and "random" in html and 'alt="annotator quality"' in html  # and the figure
    out = CliRunner().invoke(main, ["export", "w", "--store", str(store), "-o", str(tmp_path / "train"), "--with-provenance"])
    assert out.exit_code == 0, out.output
    exported = pq.read_table(tmp_path / "train" / "all.parquet")
    quality = dict(zip(*run_query(Store(store), "w", "SELECT id, consensus_quality FROM consensus").to_pydict().values()))
    assert exported["consensus_quality"].to_pylist() == [quality[i] for i in exported["id"].to_pylist()]
    assert exported["num_annotations"].to_pylist() == [int((~np.isnan(r)).sum()) for r in wide[:n]]
