"""A linear-chain CRF tagger (``sklearn-crfsuite``) as a classifier of token rows (label kind ``tokens``).

The rows are tokens in sentence order (``labelq.ingest.tokens``): ``X`` is ``(n, 3)`` object, ``[token, sentence_id,
position]``; consecutive rows of one ``sentence_id`` are a sentence. ``fit(X, y)`` trains on whole sentences (a
fold never splits one: ``LabelKind.groups``); ``predict_proba(X)`` gives each token's marginal probability of every
tag (the CRF's forward-backward marginals, each row summing to 1), in the columns of ``classes_``. Features are the
classic ones of CRF part-of-speech taggers: the word lower-cased, its 1-3 letter suffixes and prefixes, its shape
(capitalized, upper case, digits, hyphen), and the same of the words one and two places either side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MissingDependencyError


def _word(w: str, at: str) -> dict[str, Any]:
    low = w.lower()
    return {
        f"{at}low": low,
        f"{at}suf3": low[-3:],
        f"{at}suf2": low[-2:],
        f"{at}title": w.istitle(),
        f"{at}upper": w.isupper(),
        f"{at}digit": any(c.isdigit() for c in w),
    }


def features(words: list[str]) -> list[dict[str, Any]]:
    """Each word's features in its sentence."""
    out = []
    for i, w in enumerate(words):
        f = {"bias": 1.0, **_word(w, ""), "pre1": w[:1].lower(), "pre3": w[:3].lower(), "suf1": w[-1:].lower(), "hyphen": "-" in w, "len": min(len(w), 8)}
        for d in (-2, -1, 1, 2):
            j = i + d
            if 0 <= j < len(words):
                f.update(_word(words[j], f"{d:+d}:"))
            else:
                f[f"{d:+d}:edge"] = True
        out.append(f)
    return out


def sentences(X: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges of the consecutive rows of each sentence."""
    sid = X[:, 1]
    cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1 if len(sid) else np.empty(0, np.int64)
    edges = [0, *cut.tolist(), len(sid)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


class TokenCRF:
    """scikit-learn's classifier interface over token rows (module docstring)."""

    def __init__(self, c1: float = 0.1, c2: float = 0.1, max_iterations: int = 100, seed: int = 0) -> None:
        self.c1, self.c2, self.max_iterations, self.seed = c1, c2, max_iterations, seed

    def _crf(self):
        try:
            import sklearn_crfsuite
        except ImportError as exc:
            raise MissingDependencyError("the CRF tagger needs sklearn-crfsuite", "pip install 'labelq[tokens]'") from exc
        return sklearn_crfsuite.CRF(algorithm="lbfgs", c1=self.c1, c2=self.c2, max_iterations=self.max_iterations, all_possible_transitions=True)

    def fit(self, X: np.ndarray, y: np.ndarray) -> TokenCRF:
        spans = sentences(X)
        self.classes_ = np.unique(np.asarray(y, dtype=np.int64))
        self.model_ = self._crf()
        self.model_.fit([features(list(X[a:b, 0])) for a, b in spans], [[str(int(t)) for t in y[a:b]] for a, b in spans])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        spans = sentences(X)
        column = {str(int(c)): j for j, c in enumerate(self.classes_)}
        out = np.zeros((len(X), len(self.classes_)), np.float64)
        marginals = self.model_.predict_marginals([features(list(X[a:b, 0])) for a, b in spans])
        for (a, _), sentence in zip(spans, marginals):
            for i, token in enumerate(sentence):
                for tag, p in token.items():
                    out[a + i, column[tag]] = p
        return out / out.sum(axis=1, keepdims=True)
