"""The library stands without Prefect: an in-process audit and re-label never import it (flows/ alone does)."""

from __future__ import annotations

import subprocess
import sys


def test_the_library_never_imports_prefect(tmp_path):
    code = f"""
import sys
import labelq
from labelq.pipeline import audit
from labelq.relabel import relabel
audit(source="digits", store={str(tmp_path)!r}, model="logreg", n_folds=3)
relabel(name="digits", store={str(tmp_path)!r})
loaded = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
assert not loaded, loaded[:5]
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
