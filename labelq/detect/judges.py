"""``judges``: the LLM judges' probability that a row's label is wrong, as a detector.

The judges (``labelq audit --judges``, ``labelq.judges``) answer about every row: the detector needs them
to, so it turns ``--judge-all`` on. Their answers are weighed as ``--judge-aggregation`` says (by default
``calibrated``: a regression on rows asked again under a planted wrong label, so that a judge counts as much
as it told planted labels from given ones) on top of a prior that holds nothing of the row itself: the
share of wrong labels that confident learning estimates for the whole data. The score is thus the
judges' alone, where ``--judges`` with another detector combines them with that detector's score of each
row (the decision's ``ensemble``). A row is flagged when the judges put its label's chance of being wrong
above one half; the suggestion is the judges' majority proposal where they made one, else the model's most
likely other class.

Measured (``tests/test_judges_detector.py``): 300 first names labelled female or male, 30 flipped, the 1.5B
Qwen judge asked whether each label is right. Its score ranks the flipped names at an average precision of
0.219 (chance: 0.1); its probability passes one half on 4 rows, none of them flipped, so with a judge this
weak its ranking is what to use. Pretrained embeddings with logistic regression rank them at 0.415, and
confident learning combined with the judge (``--judges`` with the default detector) at 0.388. It is not a
candidate of ``ensemble``: the planted rounds would need the judges to answer again on every planted label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .confident_learning import Detection
from .context import DetectContext
from .streaming_cl import whole

log = logging.getLogger(__name__)


@dataclass
class Judges:
    """The detector described above."""

    name: str = "judges"
    needs: ClassVar[tuple[str, ...]] = ("judges",)

    def detect_context(self, ctx: DetectContext) -> Detection:
        verdicts = ctx.judges
        n = len(ctx.labels)
        score = np.ones(n)
        score[verdicts.rows] = 1.0 - verdicts.p_wrong
        flags = np.zeros(n, dtype=bool)
        flags[verdicts.rows] = verdicts.p_wrong > 0.5
        suggested = (ctx.labels + 1) % max(ctx.n_classes, 1)
        if ctx.pred_probs is not None:
            other = np.array(whole(ctx.pred_probs), dtype=np.float64)
            other[np.arange(n), ctx.labels] = -np.inf
            suggested = other.argmax(axis=1)
        suggested = np.where(verdicts.proposal >= 0, verdicts.proposal, suggested)
        log.info("judges: %d of %d judged rows flagged (P(wrong) > 0.5)", int(flags.sum()), len(verdicts.rows))
        return Detection(self.name, score, flags, suggested.astype(np.int64), {"judges": verdicts.info})
