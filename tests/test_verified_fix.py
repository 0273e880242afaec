"""Corrections with a guaranteed precision: a random calibration sample, reviewed, picks the correction rule.

The rule's guarantee is checked by simulation (how often a rule that does not reach the target passes),
and end to end on real digits with planted flips: `review export --sample`, a reviewer who answers the
truth, `review import`, `relabel --target-precision`.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import flip_labels, with_labels
from hypothesis import given, settings
from hypothesis import strategies as st

from labelq import schema as S
from labelq.cli import main
from labelq.precision import GRID, candidates, choose_rule, lower_bound, min_rows
from labelq.store import Store


def _population(n: int, precision_above: float, precision_below: float, cut: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.3, 1.0, n)
    right = rng.random(n) < np.where(scores >= cut, precision_above, precision_below)
    return scores, right


def test_a_rule_below_the_target_passes_at_most_one_minus_confidence_of_the_time():
    scores = np.sort(np.random.default_rng(0).uniform(0.3, 0.998, 5000))[::-1]
    right = ~np.isin(np.arange(5000) % 25, [0, 8, 16])  # 88% right in every run of 25, from the top score down
    for t in GRID:  # no threshold of the grid reaches 0.9
        assert right[scores >= t].mean() < 0.9 if (scores >= t).any() else True
    rng = np.random.default_rng(1)
    passed = 0
    for _ in range(400):
        pick = rng.choice(len(scores), 200, replace=False)
        passed += choose_rule(scores[pick], right[pick], scores, 0.9, 0.9).threshold is not None
    assert passed / 400 <= 0.1  # the guarantee: at most 1 - confidence


def test_a_rule_above_the_target_is_found_and_its_precision_holds():
    scores, right = _population(5000, 0.99, 0.4, 0.9, seed=2)
    rng = np.random.default_rng(3)
    found, held = 0, 0
    for _ in range(200):
        pick = rng.choice(len(scores), 200, replace=False)
        rule = choose_rule(scores[pick], right[pick], scores, 0.9, 0.9)
        if rule.threshold is not None:
            found += 1
            held += right[scores >= rule.threshold].mean() >= 0.9
            assert rule.precision_lower_bound >= 0.9 and rule.n_right <= rule.n_passing
    assert found >= 120 and held == found  # about 28 sample rows above 0.9: found in about 3 of 4 draws


def test_no_rule_says_how_many_more_reviews_or_that_they_will_not_help():
    scores, population = np.full(20, 0.99), np.full(1000, 0.99)
    rule = choose_rule(scores, np.ones(20, bool), population, 0.95, 0.9)  # 20 of 20 right: promising, too few to prove 0.95
    assert min_rows(0.95, 0.1) == 45 and rule.threshold is None and rule.more_reviews > 0 and "more random reviews (of 980 unsampled" in rule.summary()
    k = rule.more_reviews + 20
    assert lower_bound(k, k, 0.1) >= 0.95 and k < 60
    rule = choose_rule(scores, np.arange(20) % 2 == 0, population, 0.9, 0.9)  # half right
    assert rule.threshold is None and rule.more_reviews is None and rule.reviews_needed is None and "unlikely to help" in rule.summary()
    rule = choose_rule(scores, np.ones(20, bool), np.full(30, 0.99), 0.95, 0.9)  # promising, but only 10 rows are left to draw
    assert rule.more_reviews is None and rule.reviews_needed == k - 20 and rule.unsampled == 10
    assert "only 10 flagged rows are unsampled: too few to prove it by sampling" in rule.summary()


def test_an_inconclusive_rule_names_the_closest_rule_and_stays_consistent():
    """No rule passes: nothing of the (absent) chosen rule is claimed, and the closest rule is named with its figures."""
    scores = np.r_[np.full(3, 0.999), np.full(57, 0.6)]
    right = np.r_[np.ones(3, bool), np.arange(57) % 2 == 0]
    rule = choose_rule(scores, right, np.r_[np.full(20, 0.999), np.full(980, 0.6)], 0.9, 0.9)
    d = rule.describe()
    assert d["threshold"] is None and d["n_passing"] == d["n_right"] == 0 and d["observed_precision"] is None and d["precision_lower_bound"] is None
    assert (d["best_threshold"], d["best_rows"], d["best_right"], d["needed_rows"], d["unsampled"]) == (0.999, 3, 3, 22, 940)
    assert d["best_bound"] == pytest.approx(lower_bound(3, 3, 0.1)) and d["more_reviews"] == d["reviews_needed"] > 0
    text = rule.summary()
    assert "pred_probs >= 0.999, would correct 3 sample rows, 3 of them right" in text and "at least 22 sample rows" in text
    assert f"About {d['more_reviews']} more random reviews" in text


def test_candidates_are_the_most_probable_other_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    cand, score = candidates(probs, np.array([0, 2]))
    assert cand.tolist() == [1, 1] and score.tolist() == [0.2, 0.3]


@pytest.fixture(scope="module")
def flipped_digits(tmp_path_factory, digits):
    """Digits with 10% flipped labels, audited (logistic regression): (store root, true labels)."""
    root = tmp_path_factory.mktemp("verified")
    truth = digits[S.LABEL].to_numpy()
    noisy, _ = flip_labels(truth, 10, 0.1, seed=5)
    pq.write_table(with_labels(digits, noisy), root / "noisy.parquet")
    out = CliRunner().invoke(
        main, ["audit", str(root / "noisy.parquet"), "--name", "dg", "--store", str(root / "s"), "--model", "logreg", "--no-prefect", "-q"]
    )
    assert out.exit_code == 0, out.output
    return root / "s", truth


def _answer(sheet, truth: np.ndarray, names: list[str]) -> None:
    rows = list(csv.DictReader(open(sheet)))
    for r in rows:
        r["review_labels"], r["reviewer"] = names[truth[int(r["id"].split("-")[-1])]], "oracle"
    with open(sheet, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_sample_review_and_relabel_with_a_target_precision(flipped_digits, tmp_path):
    root, truth = flipped_digits
    run = CliRunner().invoke
    out = run(main, ["relabel", "dg", "--store", str(root), "--target-precision", "0.9", "--no-prefect"])
    assert out.exit_code == 2 and "no reviewed calibration sample" in out.output and "review export dg --sample" in out.output

    out = run(main, ["review", "export", "dg", "--store", str(root), "--sample", "80", "--seed", "1", "--format", "csv", "-o", str(tmp_path / "s.csv")])
    assert out.exit_code == 0, out.output
    store = Store(root)
    (record,) = [json.loads(p.read_text()) for p in (store.dataset_dir("dg") / "samples").glob("*.json")]
    sheet = list(csv.DictReader(open(tmp_path / "s.csv")))
    v1 = store.version("dg")
    flagged_ids = set(np.asarray(v1.read()[S.ID].to_pylist())[v1.read()[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)])
    assert [r["id"] for r in sheet] == record["ids"] and len(record["ids"]) == 80 and set(record["ids"]) <= flagged_ids
    assert record["population"] == len(flagged_ids)

    names = S.info_of(v1.read(columns=[S.ID])).class_names
    _answer(tmp_path / "s.csv", truth, names)
    out = run(main, ["review", "import", "dg", str(tmp_path / "s.csv"), "--store", str(root), "--no-prefect"])
    assert out.exit_code == 0, out.output

    # a second sample never redraws a row of the first
    out = run(main, ["review", "export", "dg", "--store", str(root), "--sample", "10", "--format", "csv", "-o", str(tmp_path / "s2.csv")])
    assert out.exit_code == 0 and not {r["id"] for r in csv.DictReader(open(tmp_path / "s2.csv"))} & set(record["ids"])

    out = run(main, ["relabel", "dg", "--store", str(root), "--target-precision", "0.9", "--no-prefect"])
    assert out.exit_code == 0, out.output
    assert "target precision 0.9 at confidence 0.9, from 80 random reviews: correcting flagged rows" in out.output
    v = store.version("dg")
    g = v.manifest().relabel.guarantee
    assert g["threshold"] is not None and g["n_sample"] == 80 and g["precision_lower_bound"] >= 0.9 and g["n_drawn"] == 90
    rows = v.read()
    source = np.asarray(rows[S.LABEL_SOURCE].to_pylist(), dtype=object)
    corrected = rows[S.CORRECTED_LABEL].fill_null(-1).to_numpy()
    auto = source == "relabel"
    assert auto.sum() > 20 and (corrected[auto] >= 0).all()
    assert not set(np.asarray(rows[S.ID].to_pylist())[auto]) & set(record["ids"])  # reviewed rows keep the reviewer's label
    precision = (corrected[auto] == truth[auto]).mean()
    assert precision >= 0.9, precision
    reviewed = source == "review"
    assert reviewed.sum() == 80 and (S.effective_labels(rows)[reviewed] == truth[reviewed]).all()
    by_review = int((reviewed & (corrected >= 0)).sum())  # reviewers' changes are not the rule's corrections
    assert f"{int(auto.sum()) + by_review:,} corrected: {int(auto.sum()):,} by the correction rule, {by_review:,} by reviewers (80 rows reviewed)" in out.output
    # the export keeps where each label came from, as columns that datasets loads
    out = run(main, ["export", "dg", "--store", str(root), "-o", str(tmp_path / "train"), "--with-provenance"])
    assert out.exit_code == 0, out.output
    from datasets import load_dataset

    loaded = load_dataset(str(tmp_path / "train"), split="train")
    assert {"label_source", "issue_kind", "label_score", "reviewers", "n_reviewers"} <= set(loaded.column_names)
    by_id = dict(zip(loaded["id"], zip(loaded["label_source"], loaded["n_reviewers"], loaded["label"])))
    ids = rows[S.ID].to_pylist()
    assert all(by_id[ids[i]][:2] == ("review", 1) for i in np.flatnonzero(reviewed))
    assert all(by_id[ids[i]][0] == "relabel" and by_id[ids[i]][2] == corrected[i] for i in np.flatnonzero(auto))
    assert sum(v[0] == "given" for v in by_id.values()) == len(ids) - int(auto.sum()) - 80
    # one sample serves the guarantee, the reports and the benchmark's error-rate estimate
    from labelq.benchmark.report import _corrections, calibration_checks

    report = json.loads((v.path.parent / "reports" / f"{v.tag}.json").read_text())
    assert report["relabel"]["guarantee"] == g and "precision >=" in _corrections(v)["text"]
    assert v.manifest().corrections == report["relabel"]["corrections"]
    assert report["relabel"]["corrections"] == {
        "corrected": int(auto.sum()) + by_review,
        "by_rule": int(auto.sum()),
        "by_review": by_review,
        "at_audit": 0,
        "reviewed": 80,
    }
    checks = calibration_checks(store, v)
    pos = {i: p for p, i in enumerate(rows[S.ID].to_pylist())}
    given = rows[S.LABEL].to_numpy()
    assert len(checks) == 80 and all(checks[pos[i]] == (truth[pos[i]] != given[pos[i]]) for i in record["ids"])


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 120),
    p_right=st.floats(0.0, 1.0),
    population_extra=st.integers(0, 3000),
    target=st.sampled_from([0.8, 0.9, 0.95]),
    seed=st.integers(0, 10_000),
)
def test_the_guarantee_record_never_contradicts_itself(n, p_right, population_extra, target, seed):
    """The manifest's ``relabel.guarantee`` invariants, on random samples: a chosen rule's fields agree with one
    another and with its bound; with no rule chosen, nothing of a chosen rule is claimed and the closest rule's
    fields agree with its sample."""
    rng = np.random.default_rng(seed)
    scores = rng.choice(np.array(GRID + (0.3,)), n)
    right = rng.random(n) < p_right
    population = np.concatenate([scores, rng.choice(np.array(GRID + (0.3,)), population_extra)])
    d = choose_rule(scores, right, population, target, 0.9).describe()
    if d["threshold"] is not None:
        assert d["n_passing"] == int((scores >= d["threshold"]).sum()) and d["n_right"] == int(right[scores >= d["threshold"]].sum())
        assert d["precision_lower_bound"] >= target and d["observed_precision"] == d["n_right"] / d["n_passing"]
        assert d["more_reviews"] is None and d["best_threshold"] is None
        return
    assert d["n_passing"] == d["n_right"] == 0 and d["observed_precision"] is None and d["precision_lower_bound"] is None
    assert d["unsampled"] == max(len(population) - n, 0) and d["needed_rows"] == min_rows(target, 0.1)
    if d["best_threshold"] is None:
        assert not (scores >= min(GRID)).any()
        return
    sel = scores >= d["best_threshold"]
    assert (d["best_rows"], d["best_right"]) == (int(sel.sum()), int(right[sel].sum())) and d["best_rows"] > 0
    assert d["best_bound"] == pytest.approx(lower_bound(d["best_right"], d["best_rows"], 0.1)) and d["best_bound"] < 1
    if d["reviews_needed"] is None:  # unlikely to help: no rule is right more than the target in the sample
        assert d["more_reviews"] is None and d["best_right"] / d["best_rows"] <= target
        assert all(right[scores >= t].mean() <= target for t in GRID if (scores >= t).any())
    else:
        assert d["best_right"] / d["best_rows"] > target and d["reviews_needed"] > 0
        assert d["more_reviews"] == (d["reviews_needed"] if d["reviews_needed"] <= d["unsampled"] else None)
