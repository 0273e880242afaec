"""The review app's log: every action a reviewer takes, appended to one JSON-lines file in the store.

``<store>/datasets/<name>/reviews/<version>.jsonl`` holds the actions on that version, in order. A line is
written, flushed and fsynced (under an ``flock``, so two reviewers' servers or requests never interleave)
before the app answers the request: a killed server loses nothing, and a reload resumes where each
reviewer was. Lines are never changed or removed; ``undo`` is itself a line. The one exception is a last
line cut short by a crash mid-write, which was never acknowledged: the next append cuts it off (under the
lock, before writing) and logs what it removed, so the log never holds a broken line in its middle.

Actions: ``label`` (``labels``: the reviewer's class names; ``[]`` = none of these), ``skip``,
``comment`` (``text``: a note on the row, never an answer) and ``undo`` (cancels the same reviewer's latest
action that is not cancelled yet). A line written in the app's ``--adjudicate`` mode carries ``role: lead``.

Several reviewers: each reviewer's answer to a row is their latest ``label`` on it. A row is *settled*
when one label set holds a strict majority of the reviewers who answered it (one reviewer: their
answer; two who disagree: no majority). Rows without a majority are *disagreements*: they are kept,
shown in the app, and left out of publishing until another reviewer breaks the tie or one of them
changes their answer, or a lead settles it: a lead's standing answer (``role: lead``) settles its row,
whatever the others said.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from collections import Counter
from pathlib import Path

from ..crowd import Agreement, Annotations, agreement
from ..errors import InputError

log = logging.getLogger(__name__)

ACTIONS = ("label", "skip", "comment", "undo")
ANSWERS = ("label", "skip")  # the actions that answer a row (a comment does not)


class ReviewLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, reviewer: str, action: str, row_id: str | None = None, labels: list[str] | None = None, **fields) -> dict:
        """Write one action durably and return it."""
        if action not in ACTIONS:
            raise InputError(f"unknown review action {action!r}", f"use one of {list(ACTIONS)}")
        if not reviewer or not reviewer.strip():
            raise InputError("a review needs the reviewer's name", "type your name in the app")
        entry = {
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "reviewer": reviewer.strip(),
            "action": action,
            "id": row_id,
            "labels": labels,
            **fields,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cut_torn_line(fd)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return entry

    def _cut_torn_line(self, fd: int) -> None:
        """Cut off a last line without its newline (a write cut short by a crash); call with the lock held."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return
        start = max(0, size - 2**16)
        tail = os.pread(fd, size - start, start)
        keep = start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        while keep == 0 and start > 0:  # a torn line longer than 64 KiB: look further back
            start = max(0, start - 2**16)
            chunk = os.pread(fd, 2**16, start)
            keep = start + chunk.rfind(b"\n") + 1 if b"\n" in chunk else 0
        torn = os.pread(fd, min(size - keep, 200), keep)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        log.warning("%s: cut off an incomplete last line of %d bytes (a write cut short, never acknowledged): %r", self.path, size - keep, torn)

    def entries(self) -> list[dict]:
        """Every complete line; a last line cut short by a crash is ignored."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, "rb") as fh:
            for n, raw in enumerate(fh, start=1):
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    if raw.endswith(b"\n"):
                        raise InputError(f"{self.path}: line {n} is not JSON", "the review log was edited by hand; restore it from a backup") from None
                    log.warning("%s: ignoring an incomplete last line (a write was cut short)", self.path)
        return out


def replay(entries: list[dict]) -> dict[str, list[dict]]:
    """Each reviewer's actions that stand (``undo`` applied), in order."""
    stacks: dict[str, list[dict]] = {}
    for e in entries:
        stack = stacks.setdefault(e["reviewer"], [])
        if e["action"] == "undo":
            if stack:
                stack.pop()
        else:
            stack.append(e)
    return stacks


def answers(entries: list[dict]) -> dict[str, dict[str, dict]]:
    """``{row id: {reviewer: their latest standing action on it}}`` (a ``label`` or a ``skip``)."""
    out: dict[str, dict[str, dict]] = {}
    for reviewer, stack in replay(entries).items():
        for e in stack:
            if e["action"] in ANSWERS:
                out.setdefault(e["id"], {})[reviewer] = e
    return out


def comments(entries: list[dict]) -> dict[str, list[dict]]:
    """``{row id: [{"reviewer", "at", "text"}, ...]}``: the standing comments (``undo`` applied), oldest first."""
    out: dict[str, list[dict]] = {}
    for e in sorted((e for stack in replay(entries).values() for e in stack if e["action"] == "comment"), key=lambda e: e["at"]):
        out.setdefault(e["id"], []).append({"reviewer": e["reviewer"], "at": e["at"], "text": e["text"]})
    return out


def settle(by_row: dict[str, dict[str, dict]]) -> tuple[dict[str, dict], dict[str, dict[str, list[str]]]]:
    """From ``answers(entries)``: (settled rows ``{id: {"labels", "reviewers", "at"}}``, disagreements ``{id: {reviewer: labels}}``)."""
    settled, disagreements = {}, {}
    for row_id, by in by_row.items():
        labelled = {r: e for r, e in by.items() if e["action"] == "label"}
        if not labelled:
            continue
        leads = [e for e in labelled.values() if e.get("role") == "lead"]
        if leads:  # adjudicated: the latest lead's answer settles the row
            lead = max(leads, key=lambda e: e["at"])
            agree = sorted(r for r, e in labelled.items() if sorted(e["labels"]) == sorted(lead["labels"]))
            settled[row_id] = {"labels": list(sorted(lead["labels"])), "reviewers": agree, "at": lead["at"], "adjudicated_by": lead["reviewer"]}
            continue
        votes = Counter(tuple(sorted(e["labels"])) for e in labelled.values())
        top, count = votes.most_common(1)[0]
        if count * 2 > len(labelled):
            agree = sorted(r for r, e in labelled.items() if tuple(sorted(e["labels"])) == top)
            settled[row_id] = {"labels": list(top), "reviewers": agree, "at": max(labelled[r]["at"] for r in agree)}
        else:
            disagreements[row_id] = {r: e["labels"] for r, e in labelled.items()}
    return settled, disagreements


def answer_annotations(
    by_row: dict[str, dict[str, dict]], code, ids: list[str] | None = None, n_classes: int | None = None
) -> tuple[Annotations | None, list[str]]:
    """The reviewers' standing ``label`` answers (``answers(entries)``) as ``labelq.crowd.Annotations`` over the rows
    ``ids`` (default: every answered row) that keep one: ``code(labels)`` is an answer's category (None: leave it
    out). Returns the annotations (None: no answer kept) and the rows they cover, in order."""
    item, who, label, names, rows = [], [], [], {}, []
    for row_id in sorted(by_row) if ids is None else ids:
        kept = [(r, code(e["labels"])) for r, e in sorted(by_row.get(row_id, {}).items()) if e["action"] == "label"]
        kept = [(r, c) for r, c in kept if c is not None]
        for r, c in kept:
            item.append(len(rows))
            who.append(names.setdefault(r, len(names)))
            label.append(c)
        if kept:
            rows.append(row_id)
    if not rows:
        return None, []
    return Annotations(item, who, label, len(rows), list(names), n_classes or max(label) + 1), rows


def reviewer_agreement(entries: list[dict]) -> Agreement:
    """Agreement among the reviewers of a review log (``labelq.crowd.agreement``): each distinct answer (a class,
    several classes, none of these) is a category; rows only one reviewer answered count for no figure."""
    categories: dict[tuple, int] = {}
    ann, _ = answer_annotations(answers(entries), lambda labels: categories.setdefault(tuple(sorted(labels)), len(categories)))
    return Agreement(None, 0, None, 0, []) if ann is None else agreement(ann)
