"""Versions share what did not change (hard links to equal files), and ``labelq gc`` removes old
versions without breaking a newer one."""

from __future__ import annotations

import os

from click.testing import CliRunner

from labelq.cli import main
from labelq.history import read_history
from labelq.pipeline import AuditConfig, audit
from labelq.relabel import relabel
from labelq.sql import run_query
from labelq.store import Store, disk_bytes
from labelq.writer import PAYLOAD, SOFT_LABELS


def _inode(path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def test_relabels_share_the_images_and_predictions_and_gc_keeps_the_rest_whole(tmp_path):
    root = tmp_path / "store"
    first = audit(AuditConfig.from_options(source="digits", store=str(root), model="logreg", n_folds=3)).version
    store = Store(root)
    one_version = disk_bytes(first.path)
    for coverage in (0.9, 0.95, 0.99):
        relabel(name="digits", store=str(root), coverage=coverage)
    versions = store.versions("digits")
    assert [v.tag for v in versions] == ["v0001", "v0002", "v0003", "v0004"]
    for v in versions[1:]:
        # the images and pred_probs did not change: the same file, not a copy
        assert _inode(v.path / PAYLOAD) == _inode(first.path / PAYLOAD)
        assert _inode(v.path / "pred_probs.parquet") == _inode(first.path / "pred_probs.parquet")
        assert v.verify() == []
        assert "image" not in v.read(["id", "label"]).column_names and v.read()["image"].equals(first.read()["image"])
        if v.number > 2:  # re-labels with other coverage change the label sets, not the soft labels
            assert _inode(v.path / SOFT_LABELS) == _inode(versions[1].path / SOFT_LABELS)
        own = sorted(str(p.relative_to(v.path)) for p in v.path.rglob("*") if p.is_file() and p.stat().st_nlink == 1)
        assert "manifest.json" in own and set(own) <= {"data/part-00000.parquet", "manifest.json"}  # its labels (unless equal to another's) and manifest
    assert disk_bytes(*(v.path for v in versions)) < 2.5 * one_version  # four versions (each a full copy before)

    images = {r["id"]: r["image"] for r in first.read(["id", "image"]).to_pylist()}
    r = CliRunner().invoke(main, ["gc", "digits", "--keep", "1", "--store", str(root)])
    assert r.exit_code == 0 and "removed 3 versions of digits (v0001, v0002, v0003); kept v0004" in r.output, r.output
    assert [v.tag for v in store.versions("digits")] == ["v0004"] and store.version("digits").verify() == []
    rows = run_query(store, "digits", "SELECT id, image, effective_label FROM latest").to_pylist()
    assert len(rows) == 1797 and all(images[x["id"]] == x["image"] for x in rows)  # the shared files outlived their first version
    assert [x.version for x in read_history(store, "digits")] == [1]  # v0001's run record moved to history/
    assert not (store.dataset_dir("digits") / "reports" / "v0001.html").exists()
    r = CliRunner().invoke(main, ["verify", "digits", "--store", str(root)])
    assert r.exit_code == 0 and "v0004: ok" in r.output
    r = CliRunner().invoke(main, ["gc", "digits", "--keep", "0", "--store", str(root)])
    assert r.exit_code != 0 and "--keep must be a whole number of at least 1" in r.output
