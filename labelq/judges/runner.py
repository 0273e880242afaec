"""Ask every judge about a set of examples; votes are cached, concurrent per judge, and never crash a run.

``run_judges`` returns the contract's ``judge_votes`` table (one row per judge and example; a judge that
could not answer gives ``verdict = 'missing'``) and one stats dict per judge (calls, cache hits,
answered, missing, abstained, tokens, cost, examples per second).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..progress import progress
from ..runner import step
from .backends import JudgeUnavailable, make_backend
from .cache import VOTE_COLUMNS, VoteCache
from .config import JudgeConfig
from .prompts import CHOOSE, VERIFY, choose_prompts, load_template, template_hash, verify_prompt
from .scoring import choose_probabilities, verify_probability

log = logging.getLogger(__name__)
BATCH = 16

# a published vote: the cache's columns (less its key's content hash and the attempts), keyed by row id, and whether it came from the cache
VOTES_SCHEMA = pa.schema([(S.ID, pa.string()), *(c for c in VOTE_COLUMNS if c[0] not in ("content_hash", "attempts")), ("cached", pa.bool_())])


def _kind_and_template(judge: JudgeConfig) -> tuple[str, str]:
    if judge.prompt == "verify":
        return "verify", VERIFY
    if judge.prompt == "choose":
        return "choose", CHOOSE
    return load_template(judge.prompt)


def is_choose(judge: JudgeConfig) -> bool:
    """A multiple-choice judge: its prompt names the classes, never the given label."""
    return _kind_and_template(judge)[0] == "choose"


def prompt_hash(judge: JudgeConfig, seed: int) -> str:
    kind, template = _kind_and_template(judge)
    parts = [kind, template_hash(template), str(judge.max_chars)] + ([str(judge.orders), str(seed)] if kind == "choose" else [])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def content_hash(text: str, label: int, class_names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for part in (str(text), str(label), "\x1f".join(class_names)):
        h.update(part.encode())
        h.update(b"\x1e")
    return h.hexdigest()[:32]


def _vote(backend, judge: JudgeConfig, text: str, given: int, class_names: list[str], seed: int) -> dict:
    """One judge's vote on one example (several requests for a 'choose' judge with several orders)."""
    kind, template = _kind_and_template(judge)
    latency, ptok, ctok, attempts, raws = 0.0, 0, 0, 0, []
    if kind == "verify":
        ans = backend.ask(verify_prompt(text, class_names[given], class_names, judge.max_chars, template).text)
        latency, ptok, ctok, attempts = ans.latency_ms, ans.prompt_tokens, ans.completion_tokens, ans.attempts
        raws.append({"text": ans.text, "top": dict(sorted(ans.top_logprobs.items(), key=lambda kv: -kv[1])[:5])})
        p = verify_probability(ans)
        verdict = "abstain" if p is None else ("correct" if p >= 0.5 else "wrong")
        proposed = None
    else:
        k = len(class_names)
        total, answered, class_probs = np.zeros(k + 1), 0, None
        for prompt in choose_prompts(text, class_names, judge.orders, judge.max_chars, seed, template):
            ans = backend.ask(prompt.text)
            attempts += ans.attempts
            latency += ans.latency_ms
            ptok += ans.prompt_tokens
            ctok += ans.completion_tokens
            raws.append({"text": ans.text, "top": dict(sorted(ans.top_logprobs.items(), key=lambda kv: -kv[1])[:5])})
            probs = choose_probabilities(ans, len(prompt.options))
            if probs is not None:
                answered += 1
                for letter, cls in enumerate(prompt.options):
                    total[cls if cls >= 0 else k] += probs[letter]
        if not answered:
            p, proposed, verdict = None, None, "abstain"
        else:
            total /= answered
            class_probs = total.tolist()
            p = float(total[given])
            best = int(total.argmax())
            proposed = -1 if best == k else best
            verdict = "no_class" if proposed == -1 else ("correct" if proposed == given else "wrong")
    rationale = None
    if judge.rationale and verdict != "abstain":  # a second, short generation: why
        answer = (
            {"correct": "Yes", "wrong": "No"}.get(verdict, "")
            if kind == "verify"
            else (class_names[proposed] if proposed is not None and proposed >= 0 else "none of these")
        )
        base = (
            verify_prompt(text, class_names[given], class_names, judge.max_chars, template).text
            if kind == "verify"
            else choose_prompts(text, class_names, 1, judge.max_chars, seed, template)[0].text
        )
        why = backend.ask(f"{base} {answer}. In one short sentence, the reason is:", max_tokens=judge.rationale_tokens)
        rationale = " ".join(why.text.split())[:300]
        latency += why.latency_ms
        ptok += why.prompt_tokens
        ctok += why.completion_tokens
    return {
        "verdict": verdict,
        "proposed_label": proposed,
        "p_label_correct": p,
        "rationale": rationale,
        "raw": json.dumps(raws)[:2000],
        "latency_ms": latency,
        "prompt_tokens": ptok,
        "completion_tokens": ctok,
        "attempts": attempts,
        "class_probs": class_probs if kind == "choose" else None,
    }


def judge_inputs(examples: pa.Table, ids: Sequence[str] | None) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    info = S.info_of(examples)
    if info.modality != "text":
        raise InputError(f"LLM judges read text, but this dataset's inputs are {info.modality}", "use judges on a dataset with a text column (--text-column)")
    if ids is not None:
        import pyarrow.compute as pc

        examples = examples.filter(pc.is_in(examples[S.ID], pa.array(list(ids), pa.string())))
    texts = examples[info.inputs[0]].fill_null("").to_pylist()
    return examples[S.ID].to_pylist(), texts, examples[S.LABEL].to_numpy(), info.class_names


def _ask(
    judge: JudgeConfig,
    todo: list[int],
    texts: list[str],
    labels: np.ndarray,
    class_names: list[str],
    seed: int,
    cache: VoteCache | None,
    ph: str,
    hashes: list[str],
) -> dict[int, dict]:
    """Ask ``judge`` about rows ``todo`` concurrently; answered votes go to the cache (if any) in batches as they arrive.

    Returns every asked row's vote; a judge that could not answer gives ``verdict = 'missing'`` (not cached).
    """
    log.info("judge %s: %d examples to ask", judge.name, len(todo))
    fresh: dict[int, dict] = {}
    pending: list[int] = []  # answered rows not yet in the cache
    backend = make_backend(judge)
    try:
        with ThreadPoolExecutor(max_workers=judge.concurrency) as pool, progress(len(todo), f"judge {judge.name}", unit="examples") as bar:
            futures = {pool.submit(_vote, backend, judge, texts[i], int(labels[i]), class_names, seed): i for i in todo}
            for n, fut in enumerate(as_completed(futures), 1):
                i = futures[fut]
                bar.update()
                try:
                    fresh[i] = fut.result()
                except JudgeUnavailable as exc:
                    log.warning("%s", exc)
                    fresh[i] = {
                        "verdict": "missing",
                        "proposed_label": None,
                        "p_label_correct": None,
                        "rationale": None,
                        "raw": str(exc)[:500],
                        "latency_ms": None,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "class_probs": None,
                    }
                    continue
                if cache is not None:
                    pending.append(i)
                    if len(pending) >= BATCH:
                        cache.put(_cache_rows(judge, ph, hashes, pending, fresh))
                        pending = []
                if n % max(1, len(todo) // 10) == 0:
                    log.info("judge %s: %d/%d answered", judge.name, n, len(todo))
        if cache is not None:
            cache.put(_cache_rows(judge, ph, hashes, pending, fresh))
    finally:
        backend.close()
    return fresh


@step("judge-batch", run_name="judge-{judge.name}")
def ask_batch(judge: JudgeConfig, texts: list[str], labels: list[int], class_names: list[str], seed: int) -> list[dict]:
    """``judge``'s votes on one batch of rows, in order, touching no cache: the unit that runs on a
    task runner's worker (a Dask process) while the caller keeps the single-writer vote cache."""
    fresh = _ask(judge, list(range(len(texts))), texts, np.asarray(labels), class_names, seed, None, "", [])
    return [fresh[i] for i in range(len(texts))]


def _cache_rows(judge: JudgeConfig, ph: str, hashes: list[str], rows: list[int], fresh: dict[int, dict]) -> list[dict]:
    return [
        {"judge": judge.name, "model": judge.model_id, "prompt_hash": ph, "content_hash": hashes[i], **fresh[i]}
        for i in rows
        if fresh[i]["verdict"] != "missing"
    ]


def run_judges(
    examples: pa.Table,
    judges: Sequence[JudgeConfig],
    ids: Sequence[str] | None = None,
    cache_path: Path | None = None,
    seed: int = 0,
    submit: Callable | None = None,
    batch_rows: int = 64,
) -> tuple[pa.Table, list[dict]]:
    """Every judge votes on the rows ``ids`` (default: all) of a text examples table.

    By default each judge asks from this process (``concurrency`` requests at a time). With ``submit``
    (``submit(judge, texts, labels, class_names, seed)`` runs ``ask_batch`` somewhere and returns a future,
    e.g. the ``.submit`` of a Prefect task of ``ask_batch`` on a Dask task runner) the uncached rows go out in batches of ``batch_rows``,
    every judge's batches at once; this process writes each batch's votes to the cache as it collects
    them, so an interrupted run keeps the batches that finished.
    """
    row_ids, texts, labels, class_names = judge_inputs(examples, ids)
    hashes = [content_hash(t, int(y), class_names) for t, y in zip(texts, labels)]
    cache = VoteCache(cache_path)
    out: list[dict] = []
    stats: list[dict] = []
    try:
        plans = []
        for judge in judges:
            ph = prompt_hash(judge, seed)
            cached = cache.lookup(judge.name, judge.model_id, ph, hashes)
            todo = [i for i, h in enumerate(hashes) if h not in cached]
            step = max(1, batch_rows)
            chunks = [todo[s : s + step] for s in range(0, len(todo), step)] if submit is not None else []
            futures = [submit(judge, [texts[i] for i in c], [int(labels[i]) for i in c], class_names, seed) for c in chunks]
            plans.append((judge, ph, cached, todo, chunks, futures))
        t_start = time.perf_counter()
        for judge, ph, cached, todo, chunks, futures in plans:
            st = {
                "judge": judge.name,
                "model": judge.model_id,
                "examples": len(row_ids),
                "cache_hits": len(row_ids) - len(todo),
                "asked": len(todo),
                "answered": 0,
                "missing": 0,
                "abstained": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
            }
            t0 = time.perf_counter()
            if submit is None:
                fresh = _ask(judge, todo, texts, labels, class_names, seed, cache, ph, hashes) if todo else {}
            else:
                fresh = {}
                for n, (chunk, fut) in enumerate(zip(chunks, futures), 1):
                    fresh.update(zip(chunk, fut.result()))
                    cache.put(_cache_rows(judge, ph, hashes, chunk, fresh))
                    log.info("judge %s: batch %d/%d collected", judge.name, n, len(chunks))
                t0 = t_start  # the batches ran side by side since they were submitted
            seconds = time.perf_counter() - t0
            for i, rid in enumerate(row_ids):
                vote = fresh.get(i) or cached[hashes[i]]
                out.append(
                    {
                        S.ID: rid,
                        "judge": judge.name,
                        "model": judge.model_id,
                        "prompt_hash": ph,
                        "cached": i not in fresh,
                        **{
                            k: vote[k]
                            for k in (
                                "verdict",
                                "proposed_label",
                                "p_label_correct",
                                "rationale",
                                "raw",
                                "latency_ms",
                                "prompt_tokens",
                                "completion_tokens",
                                "class_probs",
                            )
                        },
                    }
                )
            for i in todo:
                v = fresh[i]
                st["missing" if v["verdict"] == "missing" else "answered"] += 1
                st["abstained"] += v["verdict"] == "abstain"
                st["prompt_tokens"] += v["prompt_tokens"] or 0
                st["completion_tokens"] += v["completion_tokens"] or 0
            st["seconds"] = round(seconds, 2)
            st["examples_per_s"] = round(len(todo) / seconds, 2) if todo and seconds > 0 else None
            st["cost"] = round((st["prompt_tokens"] + st["completion_tokens"]) / 1000 * judge.price_per_1k_tokens, 6)
            st["batches"] = len(chunks) if submit is not None else None
            stats.append(st)
            log.info("judge %s: %s", judge.name, {k: v for k, v in st.items() if k not in ("judge",)})
    finally:
        cache.close()
    return pa.Table.from_pylist(out, schema=VOTES_SCHEMA), stats
