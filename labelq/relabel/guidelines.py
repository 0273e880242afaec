"""Labelling guidelines: a Markdown file per dataset that says what each class means, shown in the review app.

``labelq review guidelines NAME FILE`` keeps every text it is given, unchanged, under
``<store>/datasets/<name>/guidelines/<sha256>.md``, and appends to ``history.jsonl`` which text holds from
when. The latest holds. The built-in datasets ship theirs (``labelq/relabel/guidelines/<name>.md``), used
until the dataset is given its own. Each answer the app logs carries the guidelines' sha256, so every review
says which text its reviewer read, and the published version's ``review`` section lists them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from importlib.resources import files
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write_bytes
from ..store import Store

MAX_BYTES = 256 * 1024
FOLDER = "guidelines"


def set_guidelines(store: Store, name: str, path: str | Path) -> dict:
    """Make the Markdown file ``path`` the guidelines of dataset ``name``; returns ``{"sha256", "set_at", "source"}``."""
    store.version(name)  # the dataset exists (a clear error if not)
    path = Path(path)
    if not path.is_file():
        raise InputError(f"guidelines file {path} does not exist", "pass a Markdown file, e.g. guidelines.md")
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise InputError(f"{path} is {len(raw):,} bytes; guidelines are at most {MAX_BYTES:,}", "keep them to what a reviewer reads beside each row")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc})", "save the guidelines as UTF-8 Markdown") from None
    sha = hashlib.sha256(raw).hexdigest()
    folder = store.dataset_dir(name) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / f"{sha}.md").exists():
        atomic_write_bytes(folder / f"{sha}.md", raw)
    record = {"sha256": sha, "set_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "source": path.name}
    with open(folder / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def current_guidelines(store: Store, name: str) -> dict | None:
    """``{"sha256", "text", "set_at", "source"}`` of the guidelines that hold for ``name`` now (its own, else
    a built-in dataset's), or None."""
    history = store.dataset_dir(name) / FOLDER / "history.jsonl"
    if history.exists():
        lines = [line for line in history.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines:
            record = json.loads(lines[-1])
            text = (history.parent / f"{record['sha256']}.md").read_text(encoding="utf-8")
            return {**record, "text": text}
    shipped = files("labelq.relabel").joinpath(FOLDER, f"{name}.md")
    if shipped.is_file():
        raw = shipped.read_bytes()
        return {"sha256": hashlib.sha256(raw).hexdigest(), "text": raw.decode("utf-8"), "set_at": None, "source": f"built-in ({name})"}
    return None
