"""Helpers shared by the bench scripts: run a function in a child process and measure it, print tables."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _child(fn: Callable[..., dict], args: tuple, queue) -> None:
    t0 = time.perf_counter()
    out = fn(*args)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mib"] = round(peak_rss_kib() / 1024, 0)
    queue.put(out)


def peak_rss_kib(pid: int | str = "self") -> int:
    """A process's peak resident memory (this one's by default). On Linux ``VmHWM``: ``ru_maxrss`` survives
    ``exec``, so a spawned child would report its parent's peak at the fork when that was higher."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measured(fn: Callable[..., dict], *args: Any) -> dict:
    """Run ``fn(*args)`` in a fresh process; its dict plus wall time and peak resident memory."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{fn.__name__} failed with exit code {proc.exitcode}")
    return out


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, seconds and tracemalloc's peak MiB (Python allocations, numpy's included), in this process."""
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, round(seconds, 2), round(peak, 1)


def print_table(rows: list[dict], title: str = "") -> str:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:,.1f}"
        return "" if v is None else str(v)

    lines = [f"### {title}"] if title else []
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def offline_env() -> None:
    from labelq.offline import HUBS, set_defaults

    set_defaults(HUBS)


def vader_lexicon() -> tuple[list[str], np.ndarray]:
    """The VADER lexicon (PyPI ``vadersentiment``): its distinct words (the first entry of the 14 listed twice) and
    their 10 human ratings each, -4..4, as an ``(N, 10)`` int array."""
    import json
    import os

    import vaderSentiment

    lines = open(os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt"), encoding="utf-8").read().splitlines()
    words, ratings, seen = [], [], set()
    for line in lines:
        word, _, _, raw = line.split("\t")
        if word not in seen:
            seen.add(word)
            words.append(word)
            ratings.append(json.loads(raw))
    return words, np.array(ratings, dtype=np.int64)
