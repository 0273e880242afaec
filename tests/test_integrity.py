"""Damage is detected, never served; a failed publish leaves nothing; derived files heal."""

from __future__ import annotations

import json
import shutil
import stat

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from labelq.cli import main
from labelq.errors import DamagedVersionError
from labelq.pipeline import AuditConfig, audit
from labelq.store import Store

AUDIT = ["--no-prefect", "--model", "logreg", "--folds", "3", "-q"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store with two audited versions of digits; tests damage copies of it."""
    root = tmp_path_factory.mktemp("pristine") / "store"
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(root), model="logreg", n_folds=3))
    audit(
        AuditConfig.from_options(source="digits", name="dg", store=str(root), model="logreg", n_folds=3, auto_fix_min_confidence=0.5)
    )  # corrections: a second version
    return root


@pytest.fixture
def store(pristine, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(pristine, root)
    return Store(root)


def _truncate(path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _edit_manifest(version, **changes) -> None:
    path = version.path / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m, indent=2))


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def reading_commands(store: Store, out) -> list[list[str]]:
    """Every command that reads dg's versions (and the audit, which reads the earlier ones), as argument lists."""
    root = str(store.root)
    return [
        ["versions", "dg", "--store", root],
        ["issues", "dg", "--store", root],
        ["query", "dg", "SELECT count(*) FROM latest", "--store", root],
        ["report", "dg", "--store", root],
        ["relabel", "dg", "--store", root, "--no-prefect"],
        ["export", "dg", "--store", root, "-o", str(out)],
        ["audit", "digits", "--name", "dg", "--store", root, *AUDIT],
    ]


def test_verify_passes_an_intact_store_and_names_each_damaged_file(store):
    out = run("verify", "dg", "--store", str(store.root))
    assert out.exit_code == 0, out.output
    assert "dg v0001: ok" in out.output and "dg v0002: ok" in out.output
    part = store.version("dg", 1).path / "data" / "part-00000.parquet"
    _truncate(part)
    (store.version("dg", 2, check=False).path / "pred_probs.parquet").unlink()
    out = run("verify", "--all", "--store", str(store.root))
    assert out.exit_code == 1
    assert "dg v0001: DAMAGED" in out.output and f"{part}: content differs from the sha256" in out.output
    assert "pred_probs.parquet: missing" in out.output and "2 versions are damaged" in out.output


@pytest.mark.parametrize("damage", ["truncated", "rows", "classes", "extra file", "pred_probs"])
def test_every_reading_command_refuses_a_damaged_version(store, tmp_path, damage):
    v2 = store.version("dg")
    if damage == "truncated":
        _truncate(v2.path / "data" / "part-00000.parquet")
        named = "part-00000.parquet"
    elif damage == "rows":
        _edit_manifest(v2, rows=999)
        named = "manifest.json"
    elif damage == "classes":
        m = v2.manifest_json()
        _edit_manifest(v2, class_names=m["class_names"][::-1])
        named = "manifest.json"
    elif damage == "extra file":
        shutil.copy(v2.path / "data" / "part-00000.parquet", v2.path / "data" / "part-00001.parquet")
        named = "part-00001.parquet: not part of the version"
    else:
        _truncate(v2.path / "pred_probs.parquet")
        named = "pred_probs.parquet"
    for args in reading_commands(store, tmp_path / "out"):
        out = run(*args)
        assert out.exit_code == 2, (args, out.output)
        assert "dg v0002 is damaged" in out.output and named in out.output, (args, out.output)
        assert "fix: restore" in out.output and "labelq verify dg" in out.output
    assert [v.tag for v in store.versions("dg")] == ["v0001", "v0002"]  # the audit published nothing
    assert not (tmp_path / "out").exists()


def test_an_older_damaged_version_stops_an_audit_before_training(store, caplog):
    _truncate(store.version("dg", 1).path / "data" / "part-00000.parquet")
    caplog.set_level("INFO", logger="labelq")
    with pytest.raises(DamagedVersionError, match="dg v0001 is damaged"):
        audit(AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=3))
    assert "fold 1/3" not in caplog.text  # refused before any fold was trained
    assert [v.tag for v in store.versions("dg")] == ["v0001", "v0002"]
    assert not list(store.dataset_dir("dg").glob(".tmp-*"))


def test_publish_refuses_under_the_lock_when_an_older_version_is_damaged(store, digits):
    """A version damaged after the audit's early check: publish writes nothing (no version without catalog or report)."""
    from labelq import pipeline

    cfg = AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=3)
    examples = pipeline.ingest_step(cfg)  # the early check passes here
    plan = pipeline.plan_step(cfg, examples)
    pred_probs = pipeline.assemble_step(examples, plan, [pipeline.fold_step(cfg, plan, f) for f in range(plan.n_folds)])
    detection = pipeline.detect_step(cfg, examples, pred_probs)
    decision, detections, _ = pipeline.decide_step(cfg, pred_probs, detection)
    _truncate(store.version("dg", 1).path / "issues.parquet")
    with pytest.raises(DamagedVersionError, match="dg v0001 is damaged"):
        pipeline.publish_step(cfg, examples, pred_probs, detections, decision)
    assert [v.tag for v in store.versions("dg")] == ["v0001", "v0002"]
    assert not list(store.dataset_dir("dg").glob(".tmp-*"))


def test_a_stale_catalog_heals_at_the_next_command(store, tmp_path):
    """The state a kill right after the rename leaves: a new version, and a catalog built before it."""
    catalog = store.dataset_dir("dg") / "catalog.duckdb"
    old = tmp_path / "catalog-v2.duckdb"
    shutil.copy(catalog, old)
    audit(AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=3))
    shutil.copy(old, catalog)  # as if killed before the catalog was rebuilt

    def history_rows() -> int:
        con = duckdb.connect(str(catalog), read_only=True)
        try:
            return con.execute("SELECT count(*) FROM history").fetchone()[0]
        finally:
            con.close()

    assert history_rows() == 2
    out = run("history", "dg", "--store", str(store.root))
    assert out.exit_code == 0 and out.output.count("\n") == 5  # header, rule, 3 runs
    out = run("versions", "dg", "--store", str(store.root))
    assert out.exit_code == 0, out.output
    assert history_rows() == 3


def test_published_files_follow_the_umask(store):
    v = store.version("dg")
    for path in [
        v.path / "manifest.json",
        v.path / "data" / "part-00000.parquet",
        v.path / "run.json",
        store.dataset_dir("dg") / "catalog.duckdb",
        store.dataset_dir("dg") / "reports" / "v0002.html",
    ]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # the test process's umask is 022


def test_a_manifest_edit_is_caught_by_its_checksum(store):
    v = store.version("dg")
    _edit_manifest(v, seed=7)  # a field no other check covers
    problems = v.verify()
    assert problems == [f"{v.path / 'manifest.json'}: edited after publishing (its content no longer matches its checksum)"]


@pytest.mark.parametrize("damage", ["truncated", "uniform without key", "wrong shape", "nan"])
def test_bad_fold_cache_entries_are_recomputed(store, damage, caplog):
    cfg = AuditConfig.from_options(source="digits", name="dg", store=str(store.root), model="logreg", n_folds=3)
    entries = sorted((store.cache_dir / "folds").glob("*.npz"))
    assert len(entries) == 3
    target = entries[0]
    with np.load(target) as z:
        probs, key = z["probs"], str(z["key"])
    if damage == "truncated":
        _truncate(target, 50)
    elif damage == "uniform without key":
        np.savez(target, probs=np.full_like(probs, 1 / probs.shape[1]))
    elif damage == "wrong shape":
        np.savez(target, probs=probs[:-1], key=np.array(key))
    else:
        bad = probs.copy()
        bad[0, 0] = np.nan
        np.savez(target, probs=bad, key=np.array(key))
    caplog.set_level("INFO", logger="labelq")
    result = audit(cfg)
    assert f"fold cache entry {target.name} is" in caplog.text and "computing the fold again" in caplog.text
    assert result.history.folds_cached == 2
    v1, v3 = store.version("dg", 1).read_table("pred_probs"), result.version.read_table("pred_probs")
    assert v3["pred_probs"].to_pylist() == v1["pred_probs"].to_pylist()  # the recomputed fold equals the original
    with np.load(target) as z:  # and the entry was replaced
        assert str(z["key"]) == key and z["probs"].shape == probs.shape


def test_export_never_deletes_the_store_or_a_folder_that_is_not_an_export(store, tmp_path):
    root = store.root
    for out in [store.dataset_dir("dg"), root, store.version("dg").path / "train", root.parent]:
        res = run("export", "dg", "--store", str(root), "-o", str(out), "--overwrite")
        assert res.exit_code == 2 and "the store" in res.output, (out, res.output)
    assert all(not problems for problems in store.verify("dg").values())
    assert (store.dataset_dir("dg") / "catalog.duckdb").exists() and len(store.versions("dg")) == 2
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    res = run("export", "dg", "--store", str(root), "-o", str(precious), "--overwrite")
    assert res.exit_code == 2 and "not an earlier labelq export" in res.output
    assert (precious / "chapter1.tex").read_text() == "years of work"
    out = tmp_path / "train"
    assert run("export", "dg", "--store", str(root), "-o", str(out)).exit_code == 0
    assert run("export", "dg", "--store", str(root), "-o", str(out)).exit_code == 2  # not empty, no --overwrite
    res = run("export", "dg", "--store", str(root), "-o", str(out), "--overwrite", "--policy", "keep")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "export.json").read_text())["policy"] == "keep"


def test_publish_hooks_update_derived_files_and_a_failing_one_does_not_unpublish(store, caplog):
    v = store.version("dg")
    table = v.read()
    catalog = store.dataset_dir("dg") / "catalog.duckdb"
    before = catalog.stat().st_mtime_ns
    plain = store.publish("dg", table, {})  # the generic store knows no catalog
    assert catalog.stat().st_mtime_ns == before

    def broken(store, version):
        raise OSError("disk full while rebuilding")

    seen = []
    v4 = store.publish("dg", table, {}, hooks=(broken, lambda s, version: seen.append(version.tag)))
    assert "broken failed (disk full while rebuilding)" in caplog.text and seen == ["v0004"]
    assert [x.tag for x in store.versions("dg")] == ["v0001", "v0002", plain.tag, v4.tag] and not v4.verify()
    out = run("versions", "dg", "--store", str(store.root))  # the next reader heals the catalog
    assert out.exit_code == 0 and catalog.stat().st_mtime_ns != before


@pytest.mark.parametrize("link", ["version folder", "part file", "review log"])
def test_symbolic_links_in_a_dataset_are_refused_by_every_command(store, tmp_path, link):
    """Even a link to an identical copy outside the store: a version holds its own files. Every command names the link."""
    v2 = store.version("dg")
    outside = tmp_path / "outside"
    outside.mkdir()
    if link == "version folder":
        target, path = outside / "v0002", v2.path
        shutil.copytree(path, target)
        shutil.rmtree(path)
    elif link == "part file":
        path = v2.path / "data" / "part-00000.parquet"
        target = outside / "part.parquet"
        shutil.copy(path, target)
        path.unlink()
    else:
        path = store.dataset_dir("dg") / "reviews" / "v0002.jsonl"
        path.parent.mkdir()
        target = outside / "log.jsonl"
        target.write_text("")
    path.symlink_to(target)
    root = str(store.root)
    out = run("verify", "dg", "--store", root)
    assert out.exit_code == 1 and f"{path}" in out.output and "symbolic link" in out.output, out.output
    for args in [*reading_commands(store, tmp_path / "out"), ["gc", "dg", "--store", root, "--keep", "1"]]:
        res = run(*args)
        if link == "review log" and args[0] in ("report", "export"):  # they read one version, which is intact
            assert res.exit_code == 0, (args, res.output)
            continue
        assert res.exit_code == 2 and "symbolic link" in res.output and str(path) in res.output, (args, res.output)
        assert "Traceback" not in res.output
    assert [v.tag for v in store.versions("dg")] == ["v0001", "v0002"]  # nothing published on top, nothing removed
    assert not list(store.dataset_dir("dg").glob(".tmp-*")) and sorted(p.name for p in outside.iterdir()) == [target.name]


def test_verify_finds_a_forged_catalog(store):
    """A ``latest`` view that serves another version (with a matching catalog_state): any tool opening the catalog would read it."""
    catalog = store.dataset_dir("dg") / "catalog.duckdb"
    assert run("verify", "dg", "--store", str(store.root)).exit_code == 0
    con = duckdb.connect(str(catalog))
    try:
        con.execute(f"SET file_search_path = '{catalog.parent}'")
        con.execute("CREATE OR REPLACE VIEW latest AS SELECT * FROM rows WHERE version = 1")
        con.execute("CREATE TABLE extra AS SELECT 42 AS x")
    finally:
        con.close()
    out = run("verify", "dg", "--store", str(store.root))
    assert out.exit_code == 1, out.output
    assert "view latest differs from labelq's definition" in out.output and "table extra is not labelq's" in out.output
    assert "delete the catalog.duckdb file" in out.output
    catalog.unlink()
    assert run("versions", "dg", "--store", str(store.root)).exit_code == 0  # rebuilt
    assert run("verify", "dg", "--store", str(store.root)).exit_code == 0


def test_export_keeps_files_it_did_not_write_and_refuses_paths_it_cannot_write(store, tmp_path):
    root = str(store.root)
    out = tmp_path / "train"
    assert run("export", "dg", "--store", root, "-o", str(out)).exit_code == 0
    (out / "notes.md").write_text("my notes")
    res = run("export", "dg", "--store", root, "-o", str(out), "--overwrite")
    assert res.exit_code == 2 and "notes.md" in res.output and "did not write" in res.output
    assert (out / "notes.md").read_text() == "my notes" and (out / "export.json").exists()
    (tmp_path / "afile").write_text("x")
    for bad in ["/proc/self/x", str(tmp_path / "afile" / "sub")]:
        res = run("export", "dg", "--store", root, "-o", bad)
        assert res.exit_code == 2 and "cannot be written" in res.output and "Traceback" not in res.output, (bad, res.output)
