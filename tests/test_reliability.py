"""An audit whose model is no better than the class prior says so, corrects nothing and estimates nothing.

Real fine-food reviews whose labels are shuffled: no model can learn them, so every flag is noise.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner
from conftest import load_builtin, with_labels

from labelq.cli import main
from labelq.reliability import check_signal
from labelq.store import Store


def test_the_class_prior_test():
    labels = np.array([0] * 70 + [1] * 30)
    chance = np.tile([0.7, 0.3], (100, 1))  # always the majority class: accuracy 0.70 = the prior
    assert not check_signal(labels, chance)["reliable"]
    good = np.eye(2)[labels] * 0.8 + 0.1
    s = check_signal(labels, good)
    assert s["reliable"] and s["accuracy"] == 1.0 and s["class_recall"] == [1.0, 1.0] and s["majority_share"] == 0.7


def test_an_audit_at_chance_warns_and_corrects_nothing(tmp_path):
    foods = load_builtin("fine-foods").slice(0, 600)
    shuffled = np.random.default_rng(0).permutation(foods["label"].to_numpy())
    pq.write_table(with_labels(foods, shuffled), tmp_path / "shuffled.parquet")
    root = str(tmp_path / "s")
    out = CliRunner().invoke(
        main, ["audit", str(tmp_path / "shuffled.parquet"), "--name", "foods", "--store", root, "--auto-fix", "min-confidence", "0.5", "--no-prefect"]
    )
    assert out.exit_code == 0, out.output
    assert "Warning: the out-of-sample model is no better than the class prior" in out.output and "What would help" in out.output
    assert "estimated label-error rate" not in out.output
    v = Store(root).version("foods")
    m = v.manifest()
    assert m.audit.reliability["reliable"] is False and m.n_corrected == 0 and m.n_label_issues > 0
    html = (v.path.parent / "reports" / f"{v.tag}.html").read_text()
    assert 'id="unreliable"' in html and "The flags mean nothing here." in html
    record = json.loads((v.path / "run.json").read_text())
    assert record["reliable"] is False

    out = CliRunner().invoke(main, ["history", "foods", "--store", root])
    assert out.exit_code == 0 and "n/a (model at chance)" in out.output, out.output
    out = CliRunner().invoke(main, ["relabel", "foods", "--store", root, "--no-prefect"])
    assert out.exit_code == 0, out.output
    assert Store(root).version("foods").manifest().n_corrected == 0


def test_a_model_that_learned_is_reliable(tmp_path):
    from labelq.pipeline import audit

    v = audit(source="digits", store=str(tmp_path), model="logreg", n_folds=3).version
    rel = v.manifest().audit.reliability
    assert rel["reliable"] and rel["accuracy_lo"] > 0.9 > rel["majority_share"]
    assert 'id="unreliable"' not in (v.path.parent / "reports" / f"{v.tag}.html").read_text()


def test_the_warning_names_the_judges_information():
    from labelq.reliability import with_warning

    signal = check_signal(np.array([0] * 70 + [1] * 30), np.tile([0.7, 0.3], (100, 1)))
    out = with_warning(signal, {"annotator_information": {"smollm2": 0.0, "gemma": 0.013}})
    assert "smollm2 0.00, gemma 0.01" in out["warning"] and "no better than the class prior" in out["warning"] and out["suggestions"]
    assert with_warning(check_signal(np.array([0, 1] * 50), np.eye(2)[[0, 1] * 50])) == check_signal(np.array([0, 1] * 50), np.eye(2)[[0, 1] * 50])
