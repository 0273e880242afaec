"""``labelq review serve NAME``: a review app in the browser, served by uvicorn on 127.0.0.1.

The app reviews the latest version of a dataset. Its queue holds the rows of the calibration samples
drawn from that version's flagged set (``labelq review export --sample``) first, in their random order,
then the open rows of the dataset's detector samples (``--detector-sample``: flagged or not, in their
random order), then every other flagged row that nobody has reviewed, most likely wrong first. Every action goes to the
review log (``reviewlog``) before the app answers, and "publish" (or ``labelq review publish NAME``)
applies the settled rows of that log exactly as ``labelq review import`` applies a file.

Safety (other web pages in the reviewer's browser are the attackers; ``tests/test_review_app.py`` plays them
in chromium):

- **A secret per server.** Every ``/api/`` request must carry the server's token: a POST in the
  ``X-Labelq-Token`` header, a GET (which changes nothing) there or as ``?token=`` (images, which ``<img>`` loads). On the loopback the token is made
  at start and written into the page, which only a page of the app's own origin can read; on any other
  address the page itself needs ``?token=`` too. A custom header also means another origin's ``fetch``
  cannot send it without a CORS preflight, which the app never grants.
- **Requests from the app's own origin only.** The ``Host`` header must name the served address (a
  loopback server answers ``127.0.0.1``, ``localhost`` and ``[::1]`` at its port), which defeats DNS
  rebinding; a POST must be ``application/json`` and, when the browser sends them, its ``Origin`` must be
  the served origin and its ``Sec-Fetch-Site`` ``same-origin``.
- **No framing**: ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` (clickjacking of Publish).
- **Bodies are checked against a schema** (``parse_action``): at most ``MAX_BODY`` bytes, a JSON object
  with known keys and typed, bounded fields, ids that are rows of the version, labels that are classes;
  anything else is a 4xx with a message, never a 500.

Images are served by row id from the version's own rows, so no URL names a file. The page builds every
value into the document as text, never as HTML.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import secrets
import threading
from importlib.resources import files
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .. import schema as S
from ..crowd import active_scores
from ..detector_samples import open_sample_ids
from ..errors import InputError, LabelqError
from ..labelkind import check_supports, kind_of
from ..store import Store, Version
from .guidelines import current_guidelines
from .reviewlog import ACTIONS, ReviewLog, answer_annotations, answers, comments, reviewer_agreement, settle
from .samples import sampled_ids

LOGS = "reviews"  # <store>/datasets/<name>/reviews/<version>.jsonl
MAX_BODY = 64 * 1024  # bytes of a POST body: an action is about 200
MAX_REVIEWER = 100  # characters of a reviewer's name
MAX_ID = 1000  # characters of a row id in a request
MAX_COMMENT = 2000  # characters of a comment
MAX_QUERY = 200  # characters of a search
SEARCH_LIMIT = 50  # rows a search returns
TOKEN_HEADER = "x-labelq-token"


def log_path(store: Store, version: Version) -> Path:
    return store.dataset_dir(version.name) / LOGS / f"{version.tag}.jsonl"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The ``Host`` header values a server bound to ``host:port`` answers (lower case); None: any (a wildcard
    address such as ``0.0.0.0``, whose names are unknown; its token guards it)."""
    loopback = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    if host.lower() == "localhost":
        return loopback
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return {f"{host.lower()}:{port}"}
    if address.is_unspecified:
        return None
    if address.is_loopback:
        return loopback | {f"{host}:{port}" if address.version == 4 else f"[{host}]:{port}"}
    return {f"{host}:{port}" if address.version == 4 else f"[{host}]:{port}"}


class BadRequest(Exception):
    """A request the app refuses: ``status`` and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json_body(body: bytes) -> object:
    """A request body as JSON; ``BadRequest`` (400) when it is not UTF-8 or not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise BadRequest(400, "the body is not valid JSON (send one JSON object)") from None


def parse_action(body: bytes) -> dict:
    """A review action's body (``POST /api/action``) checked against its schema; ``BadRequest`` (400) names what is wrong.

    ``{"reviewer": str (1..MAX_REVIEWER characters), "action": "label" | "skip" | "comment" | "undo", "id": str (not for
    undo), "labels": list of str (``label`` only; ``[]``: none of these), "text": str (``comment`` only, 1..MAX_COMMENT
    characters)}``. Unknown keys are refused."""
    data = _json_body(body)
    if not isinstance(data, dict):
        raise BadRequest(400, f"the body must be a JSON object, got a JSON {type(data).__name__}")
    unknown = sorted(set(data) - {"reviewer", "action", "id", "labels", "text"})
    if unknown:
        raise BadRequest(400, f"unknown fields {unknown}: send reviewer, action, id, labels and text")
    reviewer, action, row_id, labels, text = (data.get(k) for k in ("reviewer", "action", "id", "labels", "text"))
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > MAX_REVIEWER:
        raise BadRequest(400, f"reviewer must be your name, a non-empty string of at most {MAX_REVIEWER} characters")
    if action not in ACTIONS:
        raise BadRequest(400, f"action must be one of {list(ACTIONS)}")
    if action != "undo" and (not isinstance(row_id, str) or not row_id or len(row_id) > MAX_ID):
        raise BadRequest(400, f"id must be a row id (a string of at most {MAX_ID} characters)")
    if action == "undo":
        row_id = None
    if action == "label":
        if not isinstance(labels, list) or not all(isinstance(c, str) for c in labels) or len(labels) != len(set(labels)):
            raise BadRequest(400, "labels must be a list of distinct class names ([] for none of these)")
    elif labels is not None:
        raise BadRequest(400, f"a {action} takes no labels")
    if action == "comment":
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_COMMENT:
            raise BadRequest(400, f"a comment's text must be a non-empty string of at most {MAX_COMMENT} characters")
        text = text.strip()
    elif text is not None:
        raise BadRequest(400, f"a {action} takes no text")
    return {"reviewer": reviewer.strip(), "action": action, "id": row_id, "labels": labels, "text": text}


class ReviewSession:
    """What the app serves: one version's rows, its queue and its review log.

    Blind by default: a reviewer sees the other reviewers' answers and comments on a row only once they have
    answered it. ``adjudicate`` (a lead, ``--adjudicate``) sees everything, gets the disagreements first, and
    settles a row by answering it (its log lines carry ``role: lead``)."""

    def __init__(self, store: Store, name: str, adjudicate: bool = False) -> None:
        self.store, self.name, self.adjudicate = store, name, adjudicate
        self.lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """(Re)read the latest version: at start, and after publishing. Only the columns the queue needs are held
        (ids, labels, flags, ranks, kinds: about 30 bytes a row); a row's inputs and results are read when shown."""
        import pyarrow.compute as pc

        v = self.store.version(self.name)
        names = v.column_names()
        meta = v.read(columns=[c for c in (S.ID, S.LABEL, S.IS_LABEL_ISSUE, S.ISSUE_RANK, S.ISSUE_KIND, S.LABEL_SOURCE) if c in names])
        info = S.info_of(meta)
        self.version, self.info, self.classes = v, info, info.class_names
        self.facts = kind_of(info).review_facts(v)
        self.log = ReviewLog(log_path(self.store, v))
        self.ids = meta[S.ID].combine_chunks()
        self.labels = meta[S.LABEL].to_numpy()
        kinds = pc.dictionary_encode(meta[S.ISSUE_KIND].combine_chunks())
        self.kind_names = [str(k) for k in kinds.dictionary.to_pylist()]
        self.kind_codes = kinds.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        flagged = meta[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
        open_rows = np.flatnonzero(flagged & ~S.reviewed(meta))
        rank = meta[S.ISSUE_RANK].fill_null(np.iinfo(np.int64).max).to_numpy()[open_rows]
        drawn = sampled_ids(self.store, self.name, meta)
        detector = open_sample_ids(self.store, self.name, meta) if kind_of(info).name == "single" else []
        del meta
        open_ids = self.ids.take(pa.array(open_rows)).to_pylist()
        self.pos = dict(zip(open_ids, open_rows.tolist()))  # the queue's rows; any other row is found by a scan (_position)
        self.sample = {i for i in drawn if i in self.pos}
        first = [i for i in drawn if i in self.sample]
        if detector:  # a detector sample's rows, flagged or not, after the calibration sample
            where = {i: p for p, i in enumerate(self.ids.to_pylist())}
            detector = [i for i in detector if i in where and i not in self.sample]
            self.pos.update((i, where[i]) for i in detector)
        ahead = self.sample | set(detector)
        rest = [open_ids[j] for j in np.argsort(rank, kind="stable") if open_ids[j] not in ahead]
        self.queue = first + detector + rest
        self.votes = self._judge_votes(v)
        self.guidelines = current_guidelines(self.store, self.name)
        self.probs = {}
        if (v.path / "pred_probs.parquet").exists() and kind_of(
            info
        ).sum_to_one:  # ActiveLab's input (a distribution a row), for the queue's rows, a batch at a time
            wanted = pa.array(list(self.pos), pa.string())
            for batch in pq.ParquetFile(v.path / "pred_probs.parquet").iter_batches(batch_size=65536, columns=[S.ID, "pred_probs"]):
                hit = batch.filter(pc.is_in(batch[S.ID], value_set=wanted))
                if hit.num_rows:
                    self.probs.update(zip(hit[S.ID].to_pylist(), np.stack(hit["pred_probs"].to_numpy(zero_copy_only=False))))

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
        """The reviewer's queue (filtered), counts, the calibration sample's progress, agreement and the next row.

        Order: the calibration sample; then rows another reviewer answered and this one has not, fewest
        labels' worth of certainty first (ActiveLab); then the rest, most likely wrong first. A lead
        (``adjudicate``) gets the disagreements first."""
        entries = self.log.entries()
        by_row = answers(entries)
        settled, disagreements = settle(by_row)
        mine = {i for i, by in by_row.items() if reviewer in by}
        second = [
            i
            for i in self.queue
            if i not in self.sample and i not in mine and i not in settled and any(e["action"] == "label" for e in by_row.get(i, {}).values())
        ]
        if second:
            score = self._active(second, by_row)
            second = sorted(second, key=lambda i: score[i])
        order = {i: n for n, i in enumerate(self.queue)}
        front = sorted(disagreements, key=lambda i: order.get(i, len(order))) if self.adjudicate else []  # a row answered by jump may be outside the queue
        lead = [*front, *(i for i in self.queue if i in self.sample and i not in front), *(i for i in second if i not in front)]
        seen = set(lead)
        queue = self.filtered([*lead, *(i for i in self.queue if i not in seen)], cls, kind)
        nxt = next((i for i in queue if i not in mine or (self.adjudicate and i in disagreements and not self._lead_answered(by_row, i))), None)
        sample_settled = sum(i in settled for i in self.sample)
        in_queue = set(queue)
        shown = (set(disagreements) if self.adjudicate else {i for i in disagreements if i in mine}) & in_queue
        return {
            "dataset": self.name,
            "version": self.version.tag,
            "classes": self.classes,
            "kinds": sorted(k for k in self.kind_names if k),
            "modality": self.info.modality,
            "multi_label": kind_of(self.info).lists,
            "answer": kind_of(self.info).answer,
            "facts": self.facts,
            "mode": "adjudicate" if self.adjudicate else "blind",
            "queue": queue,
            "sample": [i for i in queue if i in self.sample],
            "sample_size": len(self.sample),
            "sample_settled": sample_settled,
            "sample_complete": bool(self.sample) and sample_settled == len(self.sample),
            "second_opinion": [i for i in second if i in in_queue],
            "done_by_me": sum(i in mine for i in queue),
            "settled": sum(i in settled for i in queue),
            "disagreements": sorted(shown),
            "hidden_disagreements": len(set(disagreements) & in_queue) - len(shown),
            "agreement": reviewer_agreement(entries).to_json() if len(by_row) else None,
            "guidelines": self.guidelines,
            "next": nxt,
            "log_lines": len(entries),
        }

    @staticmethod
    def _lead_answered(by_row: dict, row_id: str) -> bool:
        return any(e.get("role") == "lead" for e in by_row.get(row_id, {}).values())

    def _active(self, ids: list[str], by_row: dict) -> dict[str, float]:
        """ActiveLab's score of each row (low: a further label helps most) from the reviewers' single-class answers
        and the version's pred_probs; rows without either go last."""
        ann, rows = answer_annotations(
            by_row, lambda labels: self.classes.index(labels[0]) if len(labels) == 1 else None, [i for i in ids if i in self.probs], len(self.classes)
        )
        out = dict.fromkeys(ids, np.inf)
        if ann is not None:
            out.update(zip(rows, active_scores(ann, np.stack([self.probs[i] for i in rows])).tolist()))
        return out

    def filtered(self, queue: list[str], cls: str | None, kind: str | None) -> list[str]:
        if cls:
            if cls not in self.classes:
                raise InputError(f"unknown class {cls!r}", f"use one of {self.classes}")
            c = self.classes.index(cls)
            queue = [i for i in queue if bool(np.isin(c, self.labels[self.pos[i]]))]  # the class, or one of the row's tags
        if kind:
            code = self.kind_names.index(kind) if kind in self.kind_names else -2
            queue = [i for i in queue if self.kind_codes[self.pos[i]] == code]
        return queue

    def row(self, row_id: str, reviewer: str) -> dict:
        p = self._position(row_id)
        r = self.version.rows_at([p]).to_pylist()[0]
        entries = self.log.entries()
        by = answers(entries).get(row_id, {})
        mine = by.get(reviewer)
        reveal = self.adjudicate or (mine is not None and mine["action"] == "label")  # blind until one has answered
        notes = comments(entries).get(row_id, [])
        col = self.info.inputs[0] if self.info.inputs else None
        labels = r.get(S.LABELS)
        given, suggested = kind_of(self.info).review_names(r, self.classes)
        return {
            "id": row_id,
            "given": " | ".join(given) if given else "(no tags)",
            "given_labels": given,
            "suggestion": suggested,
            "label_set": [self.classes[c] for c in labels] if labels else None,
            "label_score": r[S.LABEL_SCORE],
            "kind": r[S.ISSUE_KIND],
            "in_sample": row_id in self.sample,
            "text": str(r[col]) if self.info.modality == "text" else None,
            "features": {c: r[c] for c in self.info.inputs} if self.info.modality == "tabular" else None,
            "image": self.info.modality == "image",
            "judges": self.votes.get(row_id, []),
            "mine": mine,
            "others": {who: e for who, e in by.items() if who != reviewer} if reveal else {},
            "others_hidden": 0 if reveal else sum(who != reviewer for who in by),
            "comments": notes if reveal else [c for c in notes if c["reviewer"] == reviewer],
            "context": kind_of(self.info).review_context(self.version, p, r),  # a token's sentence
        }

    def search(self, text: str, limit: int = SEARCH_LIMIT) -> list[str]:
        """Ids of rows whose id or text contains ``text`` (case-insensitive), queue rows first, at most ``limit``;
        the texts are read a batch at a time."""
        import pyarrow.compute as pc

        if not text.strip() or len(text) > MAX_QUERY:
            raise BadRequest(400, f"search for 1 to {MAX_QUERY} characters")
        needle = text.strip()
        found = set(self.ids.filter(pc.match_substring(self.ids, needle, ignore_case=True)).to_pylist())
        if self.info.modality == "text":
            col = self.info.inputs[0]
            source = self.version.path / "payload.parquet" if col in self.version.payload_columns() else None
            batches = (
                pq.ParquetFile(source).iter_batches(batch_size=65536, columns=[S.ID, col])
                if source
                else (b for f in self.version.data_files() for b in pq.ParquetFile(f).iter_batches(batch_size=65536, columns=[S.ID, col]))
            )
            for batch in batches:
                hit = pc.match_substring(batch[col].cast(pa.string()), needle, ignore_case=True).fill_null(False)
                found.update(batch[S.ID].filter(hit).to_pylist())
                if len(found) >= 100 * limit:  # enough to fill the answer with queue rows first
                    break
        ordered = [i for i in self.queue if i in found] + sorted(found - set(self.queue))
        return ordered[:limit]

    def image_png(self, row_id: str) -> bytes:
        from ..ingest.images import as_png

        if self.info.modality != "image":
            raise KeyError(row_id)
        return as_png(self.version.rows_at([self._position(row_id)], columns=[self.info.inputs[0]])[0][0].as_py())

    def _position(self, row_id: str) -> int:
        """The row's position: the queue's from memory, any other's by a scan of the ids."""
        import pyarrow.compute as pc

        if row_id in self.pos:
            return self.pos[row_id]
        p = pc.index(self.ids, pa.scalar(row_id, pa.string())).as_py()
        if p < 0:
            raise KeyError(row_id)
        return p

    def act(self, reviewer: str, action: str, row_id: str | None = None, labels: list[str] | None = None, text: str | None = None) -> dict:
        if action != "undo":
            self._position(row_id)
        if action == "label":
            kind = kind_of(self.info)
            answer, problem = kind.parse_answer(labels or [], self.classes) if labels is not None else ([], "no labels")
            if problem:
                raise InputError(f"{problem} of {self.name!r}", f"answer with {kind.answer_hint(self.classes)}")
            labels = kind.spelled(labels, answer)
        extra = {"dataset": self.name, "version": self.version.tag}
        if action == "comment":
            extra["text"] = text
        if self.guidelines:
            extra["guidelines"] = self.guidelines["sha256"]
        if self.adjudicate:
            extra["role"] = "lead"
        return self.log.append(reviewer, action, row_id, labels if action == "label" else None, **extra)

    def publish(self) -> dict:
        """Publish the settled reviews as a new version (the checks of ``review import``), then serve it."""
        from ..runner import InProcess
        from .review import review_job

        with self.lock:
            result = review_job(self.name, str(self.log.path), str(self.store.root), "app", InProcess())
            self.load()
        return {"version": result.version.tag, "reviews": result.n_reviews, "changed": result.changed}


def create_app(
    store: Store, name: str, token: str | None = None, hosts: set[str] | None = None, page_needs_token: bool = False, adjudicate: bool = False
) -> FastAPI:
    """The FastAPI application of the review app (``labelq review serve``).

    ``token``: the secret every ``/api/`` request carries (one is made when None); ``hosts``: the ``Host``
    values served (``allowed_hosts``; None: any); ``page_needs_token``: the page itself needs ``?token=``
    (any address but the loopback), else it is served with the token written into it."""
    check_supports(store.version(name), "review", "the review app")
    session = ReviewSession(store, name, adjudicate)
    token = token or secrets.token_urlsafe(24)
    app = FastAPI(title=f"labelq review: {name}", docs_url=None, redoc_url=None, openapi_url=None)
    page = files("labelq.relabel").joinpath("review_app.html").read_text().replace("__LABELQ_TOKEN__", "" if page_needs_token else html.escape(token))

    def refuse(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def has_token(request: Request, query_too: bool) -> bool:
        given = request.headers.get(TOKEN_HEADER) or (request.query_params.get("token") if query_too else None) or ""
        return hmac.compare_digest(given.encode(), token.encode())

    def check(request: Request) -> JSONResponse | None:
        """Why ``request`` is refused, or None."""
        host = request.headers.get("host", "").lower()
        if hosts is not None and host not in hosts:
            return refuse(421, f"this server answers for {sorted(hosts)}, not Host {host!r}")
        path = request.url.path
        if path == "/":
            return None if not page_needs_token or has_token(request, True) else refuse(401, "a valid token is needed (?token=... on the page)")
        if not path.startswith("/api/"):
            return None
        if not has_token(request, query_too=request.method == "GET"):  # a GET changes nothing, and another origin cannot read its answer
            return refuse(401, "a valid token is needed (the X-Labelq-Token header): use the app's page")
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin is not None and origin.lower() != f"{request.url.scheme}://{host}":
                return refuse(403, f"cross-origin request from {origin!r} refused")
            if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return refuse(403, "cross-site request refused")
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return refuse(415, "send the body as application/json")
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                return refuse(413, f"the body is larger than {MAX_BODY} bytes")
        return None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        response = check(request) or await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.url.path.startswith("/api/") and "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    async def read_body(request: Request) -> bytes:
        """The body, refused (413) past ``MAX_BODY`` bytes even when no Content-Length announced it."""
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise BadRequest(413, f"the body is larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.exception_handler(LabelqError)
    async def labelq_error(request: Request, exc: LabelqError):
        return JSONResponse({"error": exc.problem, "fix": exc.fix}, status_code=400)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return refuse(exc.status, exc.message)

    def reviewer_param(reviewer: str) -> str:
        if len(reviewer) > MAX_REVIEWER:
            raise BadRequest(400, f"reviewer must be at most {MAX_REVIEWER} characters")
        return reviewer

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/state")
    def state(reviewer: str = "", cls: str | None = None, kind: str | None = None) -> dict:
        return session.state(reviewer_param(reviewer), cls or None, kind or None)

    @app.get("/api/row/{row_id}")
    def row(row_id: str, reviewer: str = "") -> dict:
        try:
            return session.row(row_id, reviewer_param(reviewer))
        except KeyError:
            raise HTTPException(404, f"no row {row_id[:MAX_ID]!r} in {name} {session.version.tag}") from None

    @app.get("/api/search")
    def search(q: str = "") -> dict:
        return {"ids": session.search(q)}

    @app.get("/api/image/{row_id}")
    def image(row_id: str) -> Response:
        try:
            return Response(session.image_png(row_id), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
        except KeyError:
            raise HTTPException(404, "no such image") from None

    @app.post("/api/action")
    async def action(request: Request) -> dict:
        body = parse_action(await read_body(request))
        try:
            return session.act(body["reviewer"], body["action"], body["id"], body["labels"], body["text"])
        except KeyError:
            raise HTTPException(404, f"no row {body['id']!r} in {name} {session.version.tag}") from None

    @app.post("/api/publish")
    async def publish(request: Request) -> dict:
        body = await read_body(request)
        if (_json_body(body) if body else {}) != {}:
            raise BadRequest(400, "publish takes an empty JSON object, {}")
        return session.publish()

    return app


def serve(store: Store, name: str, host: str = "127.0.0.1", port: int = 8765, token: str | None = None, adjudicate: bool = False) -> None:
    """Run the review app until interrupted. A token is made unless given; any other address than the
    loopback needs it on the page's URL too."""
    import uvicorn

    token = token or secrets.token_urlsafe(24)
    remote = not is_loopback(host)
    app = create_app(store, name, token, allowed_hosts(host, port), page_needs_token=remote, adjudicate=adjudicate)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if remote else "")
    print(f"labelq review app for {name}{' (adjudication: all answers shown, a lead answer settles a row)' if adjudicate else ''}: {url}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
