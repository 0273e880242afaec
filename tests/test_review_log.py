"""The review app's log as people use it: answers, comments, undo, adjudication, and the reviewers' agreement
(``labelq review agreement``) against kappa and alpha computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from labelq.cli import main
from labelq.relabel.app import log_path
from labelq.relabel.reviewlog import ReviewLog, answers, comments, reviewer_agreement, settle
from labelq.store import Store

# ann and bob on ten rows: they agree on 8 (five "1", three "2") and disagree on two
ANN = ["1", "1", "1", "1", "1", "1", "2", "2", "2", "2"]
BOB = ["1", "1", "1", "1", "1", "2", "2", "2", "2", "1"]
# by hand: Cohen's kappa = (8/10 - (6*6 + 4*4)/100) / (1 - 0.52) = 0.28 / 0.48; Krippendorff's alpha (nominal): the
# coincidences are o11 = 10, o22 = 6, o12 = o21 = 2, so n1 = 12, n2 = 8, n = 20 and alpha = 1 - (n - 1) * 4 / (2 * n1 * n2)
KAPPA = 0.28 / 0.48
ALPHA = 1 - 19 * 4 / (2 * 12 * 8)


def _log(path) -> ReviewLog:
    log = ReviewLog(path)
    for i, (a, b) in enumerate(zip(ANN, BOB)):
        log.append("ann", "label", f"r{i}", [a])
        log.append("bob", "label", f"r{i}", [b])
    return log


def test_agreement_equals_kappa_and_alpha_by_hand(tmp_path):
    log = _log(tmp_path / "v.jsonl")
    got = reviewer_agreement(log.entries())
    assert got.alpha == pytest.approx(ALPHA) and got.alpha_rows == 10
    assert got.fleiss is not None and got.fleiss_rows == 10
    (pair,) = got.pairs
    assert (pair["a"], pair["b"], pair["rows"]) == ("ann", "bob", 10) and pair["observed"] == pytest.approx(0.8) and pair["kappa"] == pytest.approx(KAPPA)
    # a third reviewer on three rows: a pair of its own with the rows it rests on; a comment and a skip change no figure
    log.append("carl", "label", "r0", ["1"])
    log.append("carl", "label", "r5", ["2"])
    log.append("carl", "label", "r9", ["1"])
    log.append("carl", "comment", "r9", None, text="the loop is open: a 1?")
    log.append("carl", "skip", "r8")
    got = reviewer_agreement(log.entries())
    pairs = {(p["a"], p["b"]): p for p in got.pairs}
    assert pairs[("ann", "carl")]["rows"] == 3 and pairs[("ann", "carl")]["observed"] == pytest.approx(1 / 3)
    assert pairs[("bob", "carl")]["observed"] == pytest.approx(1.0) and got.fleiss is None  # 2 or 3 answers a row


def test_comments_are_not_answers_and_a_lead_settles(tmp_path):
    log = _log(tmp_path / "v.jsonl")
    log.append("bob", "comment", "r5", None, text="could be either")
    entries = log.entries()
    assert answers(entries)["r5"]["bob"]["labels"] == ["2"]  # the comment did not replace bob's answer
    assert comments(entries) == {"r5": [{"reviewer": "bob", "at": entries[-1]["at"], "text": "could be either"}]}
    log.append("bob", "undo")  # undoes the comment, not the answer
    assert comments(log.entries()) == {} and answers(log.entries())["r5"]["bob"]["labels"] == ["2"]
    settled, disagreements = settle(answers(log.entries()))
    assert set(disagreements) == {"r5", "r9"} and len(settled) == 8
    log.append("lead", "label", "r5", ["1"], role="lead")
    settled, disagreements = settle(answers(log.entries()))
    assert set(disagreements) == {"r9"} and settled["r5"]["labels"] == ["1"] and settled["r5"]["adjudicated_by"] == "lead"
    assert settled["r5"]["reviewers"] == ["ann", "lead"]


def test_review_agreement_command(tmp_path, digits):
    root = tmp_path / "s"
    out = CliRunner().invoke(main, ["audit", "digits", "--store", str(root), "--model", "logreg", "--no-prefect", "-q"])
    assert out.exit_code == 0, out.output
    store = Store(root)
    out = CliRunner().invoke(main, ["review", "agreement", "digits", "--store", str(root)])
    assert out.exit_code == 2 and "no review log" in out.output and "labelq review serve digits" in out.output
    ids = store.version("digits").read(columns=["id"])["id"].to_pylist()[:10]
    log = ReviewLog(log_path(store, store.version("digits")))
    for i, (a, b) in enumerate(zip(ANN, BOB)):
        log.append("ann", "label", ids[i], [a], dataset="digits", version="v0001")
        log.append("bob", "label", ids[i], [b], dataset="digits", version="v0001")
    out = CliRunner().invoke(main, ["review", "agreement", "digits", "--store", str(root)])
    assert out.exit_code == 0, out.output
    assert f"Krippendorff's alpha (nominal): {ALPHA:.3f} on 10 rows" in out.output and "2 reviewers, 10 rows answered" in out.output
    line = next(x for x in out.output.splitlines() if x.startswith("ann"))
    assert line.split()[:5] == ["ann", "bob", "10", "0.800", f"{KAPPA:.3f}"] and np.isclose(KAPPA, 0.5833, atol=1e-4)
    # each reviewer against the settled answers: the two disagreements wait, the 8 settled rows agree
    assert "8 rows settled, 2 disagreements" in out.output
    ann = [x for x in out.output.splitlines() if x.startswith("ann")][-1]
    assert ann.split() == ["ann", "10", "8", "1.000"]


def test_a_lead_sees_a_disagreement_on_a_row_outside_the_queue(tmp_path, digits):
    """Two reviewers disagree on a row they reached by jumping to it (not flagged, so not in the queue): the lead's
    state still lists it first (it used to fail looking the row up in the queue)."""
    from fastapi.testclient import TestClient

    from labelq.relabel.app import create_app

    root = tmp_path / "s"
    out = CliRunner().invoke(main, ["audit", "digits", "--store", str(root), "--model", "logreg", "--no-prefect", "-q"])
    assert out.exit_code == 0, out.output
    store = Store(root)
    rows = store.version("digits").read(columns=["id", "is_label_issue"])
    outside = next(i for i, f in zip(rows["id"].to_pylist(), rows["is_label_issue"].to_pylist()) if not f)
    headers = {"X-Labelq-Token": "t"}
    reviewers = TestClient(create_app(store, "digits", token="t"))
    for who, label in (("ann", "1"), ("bob", "7")):
        got = reviewers.post("/api/action", json={"reviewer": who, "action": "label", "id": outside, "labels": [label]}, headers=headers)
        assert got.status_code == 200, got.text
    state = TestClient(create_app(store, "digits", token="t", adjudicate=True)).get("/api/state", params={"reviewer": "lee"}, headers=headers)
    assert state.status_code == 200, state.text
    assert state.json()["queue"][0] == outside and outside in state.json()["disagreements"] and state.json()["next"] == outside
