"""AuditConfig is composed of sections, each declaring its options once; the CLI and flat options come from them."""

from __future__ import annotations

import pytest

from labelq.errors import InputError
from labelq.pipeline import AuditConfig


def test_flat_options_land_in_their_sections_and_come_back(tmp_path):
    cfg = AuditConfig.from_options(
        "digits",
        store=str(tmp_path),
        model="logreg",
        n_folds=3,
        filter_by="both",
        judge_sample=5,
        alert_max_rate=0.2,
        auto_fix_min_confidence=0.9,
        classes=["a"],
    )
    assert (cfg.predict.model, cfg.predict.n_folds, cfg.detect.filter_by, cfg.judging.judge_sample) == ("logreg", 3, "both", 5)
    assert cfg.alerts.max_rate == 0.2 and cfg.auto_fix.min_confidence == 0.9 and cfg.ingest.classes == ["a"]
    assert cfg.detect.impl.filter_by == "both"  # the detector comes from the registry, built with its options
    opts = cfg.options()
    assert opts == {
        "model": "logreg",
        "n_folds": 3,
        "filter_by": "both",
        "judge_sample": 5,
        "alert_max_rate": 0.2,
        "auto_fix_min_confidence": 0.9,
        "classes": ["a"],
    }
    assert AuditConfig.from_options("digits", store=str(tmp_path), **opts) == cfg


def test_an_unknown_option_is_named(tmp_path):
    with pytest.raises(InputError, match=r"unknown audit option\(s\) \['n_fold'\]") as err:
        AuditConfig.from_options("digits", store=str(tmp_path), n_fold=3)
    assert "'n_folds'" in err.value.fix


def test_given_pred_probs_need_no_inputs(tmp_path):
    assert AuditConfig.from_options("digits", store=str(tmp_path)).ingest.inputs_required
    assert not AuditConfig.from_options("digits", store=str(tmp_path), pred_probs="p.npy").ingest.inputs_required


def test_every_option_of_every_section_is_a_command_line_option():
    from labelq.cli import audit, schedule
    from labelq.decide import AutoFix
    from labelq.options import dest, option_fields

    declared = {dest(f) for cls in (*AuditConfig.SECTIONS.values(), AutoFix) for f in option_fields(cls)}
    assert len(declared) == 32
    for command in (audit, schedule):
        assert declared <= {p.name for p in command.params}
