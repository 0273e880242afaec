"""Turn a backend's answer into probabilities. Malformed answers become abstentions (``None``), never errors."""

from __future__ import annotations

import math

import numpy as np

from .backends import Answer
from .prompts import LETTERS


def _norm(token: str) -> str:
    return token.strip().strip(".:)(\"'*").lower()


def _mass(top: dict[str, float], wanted: set[str]) -> dict[str, float]:
    out = dict.fromkeys(wanted, 0.0)
    for tok, lp in top.items():
        t = _norm(tok)
        if t in out and math.isfinite(lp):
            out[t] += math.exp(lp)
    return out


def verify_probability(ans: Answer) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first token's top log-probabilities; else the answer text; else None."""
    m = _mass(ans.top_logprobs, {"yes", "no"})
    if m["yes"] + m["no"] > 0:
        return m["yes"] / (m["yes"] + m["no"])
    words = ans.text.split()
    first = _norm(words[0]) if words else ""
    return {"yes": 1.0, "no": 0.0}.get(first)


def choose_probabilities(ans: Answer, n_options: int) -> np.ndarray | None:
    """Probabilities of the ``n_options`` lettered options (normalized over them), or None."""
    letters = [c.lower() for c in LETTERS[:n_options]]
    m = _mass(ans.top_logprobs, set(letters))
    p = np.array([m[c] for c in letters])
    if p.sum() > 0:
        return p / p.sum()
    words = ans.text.split()
    first = _norm(words[0]) if words else ""
    if first in letters:
        p = np.zeros(n_options)
        p[letters.index(first)] = 1.0
        return p
    return None
