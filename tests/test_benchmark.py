"""Corrected-test-set benchmark reports: accuracies and intervals, rankings, prevalence swaps, the
design-based error-rate estimate, input checks, and the report through the CLI and a real Prefect API."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelq.benchmark import CorrectedLabels, accuracy_table, estimate_error_rate, rankings, read_predictions, rows_needed, swap_points
from labelq.errors import InputError


def test_accuracies_subsets_rankings_and_swaps_on_a_constructed_test_set():
    # 100 rows, 20 originally mislabeled. Model "a" is right on 78/80 clean rows and 4/20 mislabeled ones;
    # model "b" on 72/80 and 18/20: "a" wins on the original labels, "b" on the corrected ones.
    n = 100
    given = np.zeros(n, int)
    corrected = given.copy()
    corrected[80:] = 1
    a = corrected.copy()
    a[:2] = 2
    a[84:] = 0  # 16 of the mislabeled rows predicted as the (wrong) given label
    b = corrected.copy()
    b[:8] = 2
    b[98:] = 0
    table = accuracy_table({"a": a, "b": b}, CorrectedLabels(given, corrected), n_boot=500)
    ra, rb = table
    assert ra["original"] == pytest.approx((78 + 16) / 100) and ra["corrected"] == pytest.approx((78 + 4) / 100)
    assert ra["correct_subset"] == pytest.approx(78 / 80) and ra["mislabeled_subset"] == pytest.approx(4 / 20)
    assert rb["original"] == pytest.approx((72 + 2) / 100) and rb["corrected"] == pytest.approx(90 / 100)
    for r in table:
        for key in ("original", "corrected", "mislabeled_subset", "correct_subset"):
            assert r[f"{key}_lo"] <= r[key] <= r[f"{key}_hi"]
    ranks, taus = rankings(table)
    assert ranks["original"] == {"a": 1, "b": 2} and ranks["corrected"] == {"a": 2, "b": 1}
    assert taus["original vs corrected"] == pytest.approx(-1.0)
    swaps = swap_points(table, observed=0.2)
    # a - b at prevalence 0: 78/80 - 72/80 = 0.075; at 1: 0.2 - 0.9 = -0.7 -> crossing at 0.075 / 0.775
    assert len(swaps) == 1 and swaps[0]["swap at prevalence"] == pytest.approx(0.075 / 0.775)
    assert swaps[0]["better on correctly labeled rows"] == "a" and swaps[0]["extra_needed_points"] < 0  # already swapped at 20%


def test_label_set_accuracy_counts_any_member():
    given = np.array([0, 1, 2, 0])
    sets = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], bool)
    t = accuracy_table({"m": np.array([1, 1, 0, 0])}, CorrectedLabels(given, given.copy(), sets), n_boot=50)[0]
    assert t["original"] == 0.75 - 0.25 and t["label_sets"] == 0.75


def test_the_design_based_estimate_covers_the_truth_where_checking_flags_only_does_not():
    """A detector that misses half the errors and raises false alarms: over many random verification
    samples the interval covers the true rate about 95% of the time; the flagged-only count is far below."""
    rng = np.random.default_rng(0)
    n = 20_000
    err = rng.random(n) < 0.06
    flag = (err & (rng.random(n) < 0.5)) | (~err & (rng.random(n) < 0.02))
    truth = err.mean()
    strata = np.where(flag, "flagged", "rest")
    covered, widths = 0, []
    for rep in range(300):
        r = np.random.default_rng(rep)
        flagged_rows = np.flatnonzero(flag)
        rest = np.flatnonzero(~flag)
        checked = np.concatenate([flagged_rows, r.choice(rest, 400, replace=False)])  # every flag + 400 random others
        est = estimate_error_rate(flag.astype(float), {int(i): bool(err[i]) for i in checked}, strata)
        covered += est.lo <= truth <= est.hi
        widths.append(est.hi - est.lo)
        assert est.design_based and est.lower_bound_checked_only < truth
    assert 0.9 <= covered / 300 <= 0.99
    # the planning formula: random checks for a +/-1% interval, from the residual spread of the rest stratum
    sd = float(np.std(err[~flag].astype(float)))
    need = rows_needed(0.02, sd, int((~flag).sum()), n)
    r = np.random.default_rng(7)
    checked = np.concatenate([np.flatnonzero(flag), r.choice(np.flatnonzero(~flag), need, replace=False)])
    est = estimate_error_rate(flag.astype(float), {int(i): bool(err[i]) for i in checked}, strata)
    assert est.hi - est.lo == pytest.approx(0.02, rel=0.25)
    # without random checks of a stratum the result says it is not design-based
    est = estimate_error_rate(flag.astype(float), {int(i): bool(err[i]) for i in np.flatnonzero(flag)}, strata)
    assert not est.design_based
    with pytest.raises(InputError, match="surrogate"):
        estimate_error_rate(np.array([0.5, 2.0]), {})


@pytest.fixture(scope="module")
def relabeled_digits(tmp_path_factory):
    from conftest import flip_labels, load_builtin, with_labels

    from labelq.pipeline import audit
    from labelq.predict import pred_probs_array
    from labelq.relabel import relabel

    root = tmp_path_factory.mktemp("bench") / "store"
    examples = load_builtin("digits")  # with 5% of its labels flipped, so the truth of every row is known
    noisy, flipped = flip_labels(examples["label"].to_numpy(), 10, 0.05, seed=3)
    source = root.parent / "digits.parquet"
    pq.write_table(with_labels(examples, noisy), source)
    (root.parent / "truth.json").write_text(json.dumps(dict(zip(examples["id"].to_pylist(), flipped.tolist()))))
    audit(source=str(source), name="digits", store=str(root), model="logreg", detector="confident_learning")  # the report's figures on cleanlab's flags
    v = relabel(name="digits", store=str(root)).version
    ids = v.read(columns=["id"])["id"].to_pylist()
    probs = pred_probs_array(v.read_table("pred_probs"))
    rng = np.random.default_rng(0)
    recs = []
    for model, noise in (("logreg", 0.0), ("worse", 0.1), ("worst", 0.3)):
        pred = probs.argmax(1)
        flip = rng.random(len(pred)) < noise
        pred[flip] = rng.integers(0, 10, int(flip.sum()))
        recs += [{"id": i, "model": model, "predicted_label": int(p)} for i, p in zip(ids, pred)]
    path = root.parent / "predictions.parquet"
    pq.write_table(pa.Table.from_pylist(recs), path)
    return root, v, path, ids


@pytest.mark.parametrize(
    "change, match",
    [
        ("unknown_id", "not rows of the test set"),
        ("missing_rows", "has predictions for 1,796 of the 1,797"),
        ("out_of_range", "class indices 0..9"),
        ("bad_name", "are not classes"),
        ("duplicate", "more than one prediction"),
        ("probs_width", "pred_probs must have 10 entries"),
        ("no_columns", "needs id, model"),
    ],
)
def test_bad_predictions_are_refused(relabeled_digits, change, match):
    _, v, path, ids = relabeled_digits
    t = pq.read_table(path).filter(pa.compute.equal(pq.read_table(path)["model"], "logreg"))
    recs = t.to_pylist()
    if change == "unknown_id":
        recs[0]["id"] = "nope"
    elif change == "missing_rows":
        recs = recs[1:]
    elif change == "out_of_range":
        recs[0]["predicted_label"] = 10
    elif change == "bad_name":
        recs = [{**r, "predicted_label": "cat"} for r in recs]
    elif change == "duplicate":
        recs[1]["id"] = recs[0]["id"]
    elif change == "probs_width":
        recs = [{"id": r["id"], "model": "m", "pred_probs": [0.5, 0.5]} for r in recs]
    elif change == "no_columns":
        recs = [{"id": r["id"], "guess": 1} for r in recs]
    with pytest.raises(InputError, match=match):
        read_predictions(pa.Table.from_pylist(recs), ids, [str(i) for i in range(10)])


def test_a_test_set_without_corrections_is_refused(relabeled_digits, tmp_path):
    from labelq.benchmark import write_benchmark_report
    from labelq.store import Store

    root, _, path, _ = relabeled_digits
    with pytest.raises(InputError, match="has no corrections"):
        write_benchmark_report(Store(root).version("digits", 1), path)


def test_benchmark_report_through_the_cli_and_prefect(relabeled_digits, tmp_path, prefect_harness):
    from labelq.cli import main

    root, v, path, ids = relabeled_digits
    checked = tmp_path / "verified.csv"
    rng = np.random.default_rng(1)
    sample = rng.choice(len(ids), 200, replace=False)
    truth = json.loads((root.parent / "truth.json").read_text())  # the injected flips: independent of the detector
    checked.write_text("id,is_label_error\n" + "\n".join(f"{ids[i]},{str(truth[ids[i]]).lower()}" for i in sample))
    r = CliRunner().invoke(
        main, ["report", "benchmark", "digits", "--store", str(root), "--predictions", str(path), "--verified", str(checked), "--bootstrap", "200"]
    )
    assert r.exit_code == 0, r.output
    assert "| model | original labels | corrected labels | label sets (ReaL)" in r.output and "Label-error rate" in r.output
    reports = v.path.parent / "reports"
    summary = json.loads((reports / f"{v.tag}-benchmark.json").read_text())
    assert [m["model"] for m in summary["models"]] == ["logreg", "worse", "worst"]
    assert summary["ranks"]["corrected"] == {"logreg": 1, "worse": 2, "worst": 3}
    rate = summary["error_rate"]
    assert rate["n_verified"] == 200 and rate["design_based"]
    true_rate = np.mean(list(truth.values()))
    assert rate["lo"] <= true_rate <= rate["hi"]  # the design-based interval covers the rate of injected errors
    assert rate["lower_bound_checked_only"] < true_rate  # counting checked rows only undercounts
    rows = v.read(columns=["label", "corrected_label"])
    corrected = rows["corrected_label"].to_pylist()
    changed = sum(c is not None and c != g for c, g in zip(corrected, rows["label"].to_pylist()))
    assert summary["originally_mislabeled"] == changed > 0  # counted from the published rows
    html = (reports / f"{v.tag}-benchmark.html").read_text()
    assert html.count('<img class="fig"') == 3 and "Markdown summary" in html
    # the audit report keeps its old command
    r = CliRunner().invoke(main, ["report", "digits", "--store", str(root)])
    assert r.exit_code == 0 and f"{v.tag}.html" in r.output, r.output
    r = CliRunner().invoke(main, ["report", "benchmark", "digits", "--store", str(root), "--predictions", str(tmp_path / "none.parquet"), "--no-prefect"])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_models_from_a_config_file_are_trained_and_reported(relabeled_digits, tmp_path):
    from labelq.cli import main

    root, v, _, _ = relabeled_digits
    cfg = tmp_path / "models.toml"
    cfg.write_text(
        'train = "digits"\nseed = 1\n\n[[model]]\nname = "lr strong"\nmodel = "logreg"\nparams = { C = 1.0 }\n\n'
        '[[model]]\nname = "lr weak"\nmodel = "logreg"\nparams = { C = 0.0001 }\n\n[[model]]\nmodel = "cnn"\nparams = { epochs = 1 }\n'
    )
    r = CliRunner().invoke(main, ["report", "benchmark", "digits", "--store", str(root), "--models", str(cfg), "--no-prefect", "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    summary = json.loads((v.path.parent / "reports" / f"{v.tag}-benchmark.json").read_text())
    assert {m["model"] for m in summary["models"]} == {"lr strong", "lr weak", "cnn"}
    acc = {m["model"]: m["original"] for m in summary["models"]}
    assert acc["lr strong"] > acc["lr weak"]  # in-sample here (trained on the same digits), but the models differ
    cfg.write_text('train = "digits"\n[[model]]\nmodel = "bert"\n')
    r = CliRunner().invoke(main, ["report", "benchmark", "digits", "--store", str(root), "--models", str(cfg), "--no-prefect"])
    assert r.exit_code == 2 and "unknown model 'bert'" in r.output
    r = CliRunner().invoke(main, ["report", "benchmark", "digits", "--store", str(root), "--no-prefect"])
    assert r.exit_code == 2 and "either --predictions or --models" in r.output


def test_model_names_are_escaped_in_the_markdown(relabeled_digits, tmp_path):
    from labelq.benchmark.report import write_benchmark_report
    from labelq.store import Store

    root, v, path, ids = relabeled_digits
    names = {"logreg": "cnn | v2 *best*", "worse": "worse_model", "worst": "<b>worst</b>"}
    t = pq.read_table(path)
    t = t.set_column(t.column_names.index("model"), "model", pa.array([names[m] for m in t["model"].to_pylist()]))
    pq.write_table(t, tmp_path / "p.parquet")
    md = write_benchmark_report(Store(root).version("digits", v.number), tmp_path / "p.parquet", n_boot=50)["md"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "%" not in line and not line.startswith("| model |")]
    assert len(rows) == 3
    cells = {r.split(" | ")[0][2:] for r in rows}
    assert cells == {r"cnn \| v2 \*best\*", r"worse\_model", r"\<b\>worst\</b\>"}
    for r in rows:  # every row has as many unescaped cell separators as the header
        assert r.replace(r"\|", "").count("|") == md.splitlines()[4].count("|")
