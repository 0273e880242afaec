"""The `labelq` command, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from labelq.cli import main


def test_default_audit_as_in_the_readme(tmp_path):
    """`labelq audit` with no arguments: digits, a Prefect flow, the store in ./data/store."""
    env = {**os.environ}
    env.pop("LABELQ_STORE", None)
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-m", "labelq.cli", "audit"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Published digits v0001: 1,797 rows" in proc.stdout
    assert "Top " in proc.stdout and "suggested_name" in proc.stdout
    assert (tmp_path / "data" / "store" / "datasets" / "digits" / "v0001" / "manifest.json").exists()
    assert "fold 5/5" in proc.stdout + proc.stderr  # progress is shown
    # the temporary server gets every log before it stops (a log worker left with work retried for 80 s at exit)
    assert "Error logging to API" not in proc.stderr and "All connection attempts failed" not in proc.stderr


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("clistore")
    res = CliRunner().invoke(main, ["audit", "digits", "--name", "dg", "--store", str(root), "--no-prefect", "--model", "logreg", "--folds", "3", "-q"])
    assert res.exit_code == 0, res.output
    return root


def test_issues_versions_query(cli_store):
    r = CliRunner()
    out = r.invoke(main, ["issues", "dg", "--store", str(cli_store), "--limit", "3"])
    assert out.exit_code == 0 and "issue_rank" in out.output and "suspected label errors" in out.output
    lines = out.output.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("issue_rank")) + 2 :]  # after the header and its rule
    shown = [line.split()[1] for line in table if line.strip()]
    flagged = json.loads(
        r.invoke(main, ["query", "dg", "SELECT id FROM issues ORDER BY issue_rank LIMIT 3", "--store", str(cli_store), "--format", "json"]).output
    )
    assert shown == [row["id"] for row in flagged]
    out = r.invoke(main, ["versions", "dg", "--store", str(cli_store)])
    assert out.exit_code == 0 and "1797" in out.output
    out = r.invoke(
        main, ["query", "dg", "SELECT label, count(*) AS n FROM latest GROUP BY label ORDER BY label", "--store", str(cli_store), "--format", "json"]
    )
    assert out.exit_code == 0
    assert sum(row["n"] for row in json.loads(out.output)) == 1797
    out = r.invoke(main, ["report", "dg", "--store", str(cli_store)])
    assert out.exit_code == 0 and out.output.strip().endswith("v0001.json")


def test_errors_name_the_problem_and_the_fix(cli_store, tmp_path):
    r = CliRunner()
    out = r.invoke(main, ["audit", str(tmp_path / "missing.csv"), "--store", str(tmp_path)])
    assert out.exit_code == 2
    assert "error: the source" in out.output and "does not exist" in out.output and "fix:" in out.output
    out = r.invoke(main, ["issues", "nothing", "--store", str(cli_store)])
    assert out.exit_code == 2 and "no published versions of 'nothing'" in out.output
    out = r.invoke(main, ["query", "dg", "DROP VIEW rows", "--store", str(cli_store)])
    assert out.exit_code == 2 and "read-only" in out.output
    out = r.invoke(main, ["audit", "digits", "--store", str(tmp_path), "--model-param", "epochs"])
    assert out.exit_code != 0 and "KEY=VALUE" in out.output


def test_text_issues_show_a_snippet(tmp_path):
    lines = ["text,label"] + [f"calm meeting notes for the project {i},ham" for i in range(30)]
    lines += [f"win free cash prize offer now {i},spam" for i in range(30)] + ["win free cash prize offer today,ham"]
    (tmp_path / "mail.csv").write_text("\n".join(lines))
    r = CliRunner()
    out = r.invoke(main, ["audit", str(tmp_path / "mail.csv"), "--store", str(tmp_path / "s"), "--no-prefect", "--folds", "3", "-q"])
    assert out.exit_code == 0, out.output
    out = r.invoke(main, ["issues", "mail", "--store", str(tmp_path / "s")])
    assert "text" in out.output.splitlines()[1] and "win free cash prize offer today" in out.output
