"""``labelq review serve NAME``: a review app in the browser, served by uvicorn on 127.0.0.1.

The app reviews the latest version of a dataset. Its queue holds the rows of the calibration samples
drawn from that version's flagged set (``labelq review export --sample``) first, in their random order,
then every other flagged row that nobody has reviewed, most likely wrong first. Every action goes to the
review log (``reviewlog``) before the app answers, and "publish" (or ``labelq review publish NAME``)
applies the settled rows of that log exactly as ``labelq review import`` applies a file.

Safety: the app binds to 127.0.0.1 unless told otherwise; any other address needs a token, which every
request must carry (``?token=`` on the page, the ``X-Labelq-Token`` header on API calls). Images are
served by row id from the version's own rows, so no URL names a file. The page builds every value into
the document as text, never as HTML.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .. import schema as S
from ..errors import InputError, LabelqError
from ..multilabel import check_single_label
from ..store import Store, Version
from .review import NONE_OF_THESE, _suggestion, sampled_ids
from .reviewlog import ReviewLog, answers, settle

LOGS = "reviews"  # <store>/datasets/<name>/reviews/<version>.jsonl


def log_path(store: Store, version: Version) -> Path:
    return store.dataset_dir(version.name) / LOGS / f"{version.tag}.jsonl"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class ReviewSession:
    """What the app serves: one version's rows, its queue and its review log."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        self.lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """(Re)read the latest version: at start, and after publishing."""
        v = self.store.version(self.name)
        rows = v.read()
        info = S.info_of(rows)
        self.version, self.info, self.classes = v, info, info.class_names
        self.log = ReviewLog(log_path(self.store, v))
        ids = rows[S.ID].to_pylist()
        self.pos = {i: p for p, i in enumerate(ids)}
        self.rows = rows
        flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
        open_rows = flagged & ~S.reviewed(rows)
        drawn = sampled_ids(self.store, self.name, rows)
        self.sample = {i for i in drawn if open_rows[self.pos[i]]}
        first = [i for i in drawn if i in self.sample]
        rank = rows[S.ISSUE_RANK].fill_null(np.iinfo(np.int64).max).to_numpy()
        rest = [ids[p] for p in np.flatnonzero(open_rows)[np.argsort(rank[open_rows], kind="stable")] if ids[p] not in self.sample]
        self.queue = first + rest
        self.votes = self._judge_votes(v)

    def _judge_votes(self, v: Version) -> dict[str, list[dict]]:
        if not (v.path / "judge_votes.parquet").exists():
            return {}
        out: dict[str, list[dict]] = {}
        for r in v.read_table("judge_votes").to_pylist():
            proposed = r.get("proposed_label")
            out.setdefault(r[S.ID], []).append(
                {
                    "judge": r["judge"],
                    "verdict": r["verdict"],
                    "proposed": self.classes[proposed] if proposed is not None and 0 <= proposed < len(self.classes) else None,
                    "p_label_correct": r["p_label_correct"],
                    "rationale": r.get("rationale"),
                }
            )
        return out

    def state(self, reviewer: str, cls: str | None = None, kind: str | None = None) -> dict:
        """The filtered queue, each row's status for ``reviewer``, counts and the next row to review."""
        entries = self.log.entries()
        by_row = answers(entries)
        settled, disagreements = settle(by_row)
        queue = self.filtered(cls, kind)
        mine = {i for i, by in by_row.items() if reviewer in by}
        nxt = next((i for i in queue if i not in mine), None)
        return {
            "dataset": self.name,
            "version": self.version.tag,
            "classes": self.classes,
            "kinds": sorted({k for k in self.rows[S.ISSUE_KIND].to_pylist() if k}),
            "modality": self.info.modality,
            "queue": queue,
            "sample": [i for i in queue if i in self.sample],
            "done_by_me": sum(i in mine for i in queue),
            "settled": sum(i in settled for i in queue),
            "disagreements": sorted(set(disagreements) & set(queue)),
            "next": nxt,
            "log_lines": len(entries),
        }

    def filtered(self, cls: str | None, kind: str | None) -> list[str]:
        queue = self.queue
        if cls:
            if cls not in self.classes:
                raise InputError(f"unknown class {cls!r}", f"use one of {self.classes}")
            c = self.classes.index(cls)
            labels = self.rows[S.LABEL].to_numpy()
            queue = [i for i in queue if labels[self.pos[i]] == c]
        if kind:
            kinds = self.rows[S.ISSUE_KIND].to_pylist()
            queue = [i for i in queue if kinds[self.pos[i]] == kind]
        return queue

    def row(self, row_id: str, reviewer: str) -> dict:
        p = self._position(row_id)
        r = self.rows.slice(p, 1).to_pylist()[0]
        by = answers(self.log.entries()).get(row_id, {})
        col = self.info.inputs[0] if self.info.inputs else None
        labels = r.get(S.LABELS)
        return {
            "id": row_id,
            "given": self.classes[r[S.LABEL]],
            "given_index": r[S.LABEL],
            "suggestion": _suggestion(r, self.classes),
            "label_set": [self.classes[c] for c in labels] if labels else None,
            "label_score": r[S.LABEL_SCORE],
            "kind": r[S.ISSUE_KIND],
            "in_sample": row_id in self.sample,
            "text": str(r[col]) if self.info.modality == "text" else None,
            "features": {c: r[c] for c in self.info.inputs} if self.info.modality == "tabular" else None,
            "image": self.info.modality == "image",
            "judges": self.votes.get(row_id, []),
            "mine": by.get(reviewer),
            "others": {who: e for who, e in by.items() if who != reviewer},
        }

    def image_png(self, row_id: str) -> bytes:
        from ..ingest.images import as_png

        if self.info.modality != "image":
            raise KeyError(row_id)
        return as_png(self.rows[self.info.inputs[0]][self._position(row_id)].as_py())

    def _position(self, row_id: str) -> int:
        if row_id not in self.pos:
            raise KeyError(row_id)
        return self.pos[row_id]

    def act(self, reviewer: str, action: str, row_id: str | None = None, labels: list[str] | None = None) -> dict:
        if action != "undo":
            self._position(row_id)
        if action == "label":
            bad = [c for c in labels or [] if c not in self.classes]
            if bad or labels is None:
                raise InputError(f"labels {bad} are not classes of {self.name!r}", f"use {self.classes} (an empty list: {NONE_OF_THESE!r})")
        return self.log.append(reviewer, action, row_id, labels if action == "label" else None, dataset=self.name, version=self.version.tag)

    def publish(self) -> dict:
        """Publish the settled reviews as a new version (the checks of ``review import``), then serve it."""
        from ..runner import InProcess
        from .review import review_job

        with self.lock:
            result = review_job(self.name, str(self.log.path), str(self.store.root), "app", InProcess())
            self.load()
        return {"version": result.version.tag, "reviews": result.n_reviews, "changed": result.changed}


def create_app(store: Store, name: str, token: str | None = None) -> FastAPI:
    """The FastAPI application of the review app (``labelq review serve``)."""
    check_single_label(store.version(name), "the review app")
    session = ReviewSession(store, name)
    app = FastAPI(title=f"labelq review: {name}", docs_url=None, redoc_url=None, openapi_url=None)
    page = files("labelq.relabel").joinpath("review_app.html").read_text()

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if token is not None:
            given = request.headers.get("x-labelq-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "a valid token is needed (?token=... on the page)"}, status_code=401)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(LabelqError)
    async def labelq_error(request: Request, exc: LabelqError):
        return JSONResponse({"error": exc.problem, "fix": exc.fix}, status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/state")
    def state(reviewer: str = "", cls: str | None = None, kind: str | None = None) -> dict:
        return session.state(reviewer, cls or None, kind or None)

    @app.get("/api/row/{row_id}")
    def row(row_id: str, reviewer: str = "") -> dict:
        try:
            return session.row(row_id, reviewer)
        except KeyError:
            raise HTTPException(404, f"no row {row_id!r} in {name} {session.version.tag}") from None

    @app.get("/api/image/{row_id}")
    def image(row_id: str) -> Response:
        try:
            return Response(session.image_png(row_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})
        except KeyError:
            raise HTTPException(404, "no such image") from None

    @app.post("/api/action")
    async def action(request: Request) -> dict:
        body = await request.json()
        try:
            return session.act(str(body.get("reviewer", "")), str(body.get("action", "")), body.get("id"), body.get("labels"))
        except KeyError:
            raise HTTPException(404, f"no row {body.get('id')!r}") from None

    @app.post("/api/publish")
    def publish() -> dict:
        return session.publish()

    return app


def serve(store: Store, name: str, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    """Run the review app until interrupted. Another address than the loopback needs a token (one is made)."""
    import uvicorn

    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(24)
    app = create_app(store, name, token)
    url = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    print(f"labelq review app for {name}: {url}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
