"""An installed (non-editable) labelq carries its SQL files and flows."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_sql_and_flows_and_they_load(tmp_path):
    import shutil

    # build from a clean copy: setuptools reuses a checkout's build/ folder, which can hide a missing package
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("build", "dist", ".git", "data", "*.egg-info", "__pycache__", "out"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)], check=True)
    wheel = next(tmp_path.glob("labelq-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    sql_files = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("labelq/_sql/")) == sql_files
    modules = {f"labelq/{p.relative_to(ROOT / 'labelq').as_posix()}" for p in (ROOT / "labelq").rglob("*.py")}
    modules |= {f"labelq/flows/{p.name}" for p in (ROOT / "flows").glob("*.py")}
    assert modules <= set(names), f"missing from the wheel: {sorted(modules - set(names))}"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import labelq, labelq.flows.audit; from labelq.sql import load_sql, VIEWS;"
        "assert labelq.__file__.startswith(sys.argv[1]), labelq.__file__;"
        "print(all(load_sql(v).strip() for v in VIEWS))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
