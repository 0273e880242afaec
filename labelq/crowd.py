"""Several annotators a row: consensus labels, the quality of each annotator, which rows most need one
more label, and how well people agree.

Annotations are held in long form (``Annotations``: one entry per item, annotator and label), never as
the items x annotators matrix that cleanlab's ``multiannotator`` module takes: a crowd of thousands of
annotators, each labelling a few items, stays as small as its labels.

- ``majority_vote``: the most common label, ties broken as cleanlab's ``get_majority_vote_label`` does
  (the model's pred_probs, then the rarer class, then the annotators' agreement with the untied rows);
- ``dawid_skene``: the classic EM estimate of each annotator's confusion matrix and the items' classes
  (Dawid and Skene 1979), for data with no model;
- ``crowdlab``: CROWDLAB (Goh, Tkachenko and Mueller 2022), the model's out-of-sample pred_probs and the
  annotators' labels weighted by how much each beats a constant guess; the same arithmetic as cleanlab's
  ``get_label_quality_multiannotator`` with ``consensus_method="best_quality"`` (tested equal);
- ``active_scores``: ActiveLab (cleanlab's ``get_active_learning_scores``): low = one more label helps most;
- ``agreement``: Krippendorff's alpha (nominal, any number of annotators a row), Fleiss' kappa (when every
  row has the same number of annotators), and Cohen's kappa for every pair of annotators who share rows,
  each with the number of rows it rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .errors import InputError

CLIP = 1e-6  # cleanlab's CLIPPING_LOWER_BOUND
TEMPERATURES = (0.1, 0.2, 0.5, 0.8, 1, 2, 3, 5, 8)  # cleanlab's coarse temperature grid for ActiveLab


@dataclass
class Annotations:
    """``item[j]``, ``annotator[j]``, ``label[j]``: the j-th annotation (indices), for ``n_items`` rows,
    ``annotators`` (names) and ``n_classes`` classes. Each annotator labels an item at most once."""

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    n_items: int
    annotators: list[str]
    n_classes: int

    def __post_init__(self) -> None:
        self.item = np.asarray(self.item, dtype=np.int64)
        self.annotator = np.asarray(self.annotator, dtype=np.int64)
        self.label = np.asarray(self.label, dtype=np.int64)
        pair = self.item * max(len(self.annotators), 1) + self.annotator
        uniq, counts = np.unique(pair, return_counts=True)
        if (counts > 1).any():
            j = int(uniq[counts > 1][0])
            raise InputError(
                f"annotator {self.annotators[j % len(self.annotators)]!r} labelled row {j // len(self.annotators)} more than once",
                "keep one label per annotator and row (the latest, say)",
            )
        missing = np.flatnonzero(np.bincount(self.item, minlength=self.n_items) == 0)
        if len(missing):
            raise InputError(f"{len(missing)} rows have no annotation, e.g. row {int(missing[0])}", "drop them, or give each row at least one label")

    @classmethod
    def from_wide(cls, labels: np.ndarray, annotators: list[str] | None = None, n_classes: int | None = None) -> Annotations:
        """From an items x annotators matrix with NaN where an annotator gave no label (cleanlab's input)."""
        labels = np.asarray(labels, dtype=np.float64)
        item, who = np.nonzero(~np.isnan(labels))
        names = annotators or [str(a) for a in range(labels.shape[1])]
        k = n_classes or int(np.nanmax(labels)) + 1
        return cls(item, who, labels[item, who].astype(np.int64), labels.shape[0], list(names), k)

    def wide(self) -> np.ndarray:
        """The items x annotators matrix (NaN: no label), for references such as cleanlab."""
        out = np.full((self.n_items, len(self.annotators)), np.nan)
        out[self.item, self.annotator] = self.label
        return out

    @property
    def num_annotations(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def counts(self) -> np.ndarray:
        """``(n_items, n_classes)``: how many annotators gave each class."""
        flat = np.bincount(self.item * self.n_classes + self.label, minlength=self.n_items * self.n_classes)
        return flat.reshape(self.n_items, self.n_classes).astype(np.float64)

    def per_annotator(self, values: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Mean of ``values`` (one per annotation) for each annotator, over the annotations ``where`` holds
        (default all); NaN for an annotator with none."""
        m = len(self.annotators)
        who = self.annotator if where is None else self.annotator[where]
        values = np.asarray(values, dtype=np.float64) if where is None else np.asarray(values, dtype=np.float64)[where]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(who, weights=values, minlength=m) / np.bincount(who, minlength=m)


def share_agreeing(ann: Annotations, labels: np.ndarray) -> np.ndarray:
    """``(n_items,)``: the share of each row's annotators who gave the row's entry of ``labels``."""
    return np.bincount(ann.item, weights=ann.label == labels[ann.item], minlength=ann.n_items) / ann.num_annotations


def majority_vote(ann: Annotations, pred_probs: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The most common label of each row; ties as cleanlab breaks them (module docstring), the last by a seeded draw."""
    counts = ann.counts()
    tied = counts == counts.max(axis=1, keepdims=True)
    single = tied.sum(axis=1) == 1
    if pred_probs is not None:
        tied = _narrow(tied, pred_probs)
    tied = _narrow(tied, -np.broadcast_to(counts.sum(axis=0), counts.shape))
    vote = np.where(tied.sum(axis=1) == 1, tied.argmax(axis=1), -1)
    left = np.flatnonzero(vote < 0)
    if len(left):  # each tied class scored by the mean agreement (on the untied rows) of the annotators who gave it
        agree = ann.per_annotator(ann.label == counts.argmax(axis=1)[ann.item], where=single[ann.item])
        seen = ~np.isnan(agree)
        agree[~seen] = agree[seen].mean() if seen.any() else 0.0
        mean = np.zeros(counts.shape)
        on = np.isin(ann.item, left)
        np.add.at(mean, (ann.item[on], ann.label[on]), agree[ann.annotator[on]])
        mean = np.where(counts > 0, mean / np.maximum(counts, 1), -np.inf)
        tied[left] = _narrow(tied[left], mean[left])
        rng = np.random.default_rng(seed)
        vote[left] = [rng.choice(np.flatnonzero(t)) for t in tied[left]]
    return vote.astype(np.int64)


def _narrow(tied: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Keep, among each row's tied classes, those with the highest ``score``."""
    masked = np.where(tied, score, -np.inf)
    return tied & (masked == masked.max(axis=1, keepdims=True))


def dawid_skene(ann: Annotations, iterations: int = 100, tol: float = 1e-6, smoothing: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Dawid–Skene EM: ``(posterior (n_items, K), confusion (annotators, K, K))`` with ``confusion[a, true, given]``,
    started from the annotators' vote shares and smoothed by ``smoothing`` pseudo-counts."""
    k, m = ann.n_classes, len(ann.annotators)
    post = ann.counts()
    post /= post.sum(axis=1, keepdims=True)
    for _ in range(iterations):
        prior = post.mean(axis=0) + 1e-12
        conf = np.full((m, k, k), smoothing)
        np.add.at(conf, (ann.annotator, slice(None), ann.label), post[ann.item])
        conf /= conf.sum(axis=2, keepdims=True)
        log = np.tile(np.log(prior), (ann.n_items, 1))
        np.add.at(log, ann.item, np.log(conf[ann.annotator, :, ann.label]))
        new = np.exp(log - log.max(axis=1, keepdims=True))
        new /= new.sum(axis=1, keepdims=True)
        done = np.abs(new - post).max() < tol
        post = new
        if done:
            break
    return post, conf


@dataclass
class Crowdlab:
    """CROWDLAB's results. Per row: ``consensus``, ``quality`` (of the consensus), ``agreement`` (share of the
    row's annotators who gave the consensus), ``post`` (the combined class probabilities). Per annotation:
    ``label_quality``. Per annotator: ``annotator_quality``, ``agreement_with_consensus``, ``weight``;
    ``model_weight`` is the model's; ``majority`` the majority vote it started from."""

    consensus: np.ndarray
    quality: np.ndarray
    agreement: np.ndarray
    post: np.ndarray
    label_quality: np.ndarray
    annotator_quality: np.ndarray
    agreement_with_consensus: np.ndarray
    weight: np.ndarray
    model_weight: float
    majority: np.ndarray = field(repr=False)


def crowdlab(ann: Annotations, pred_probs: np.ndarray) -> Crowdlab:
    """CROWDLAB with the best-quality consensus (module docstring)."""
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.shape != (ann.n_items, ann.n_classes):
        raise InputError(
            f"pred_probs have shape {probs.shape}, the annotations {ann.n_items} rows and {ann.n_classes} classes", "give one row of pred_probs a row"
        )
    n = ann.num_annotations
    if (n == 1).all():
        raise InputError("every row has one annotation: CROWDLAB needs rows that several annotators labelled", "audit the single labels instead")
    majority = majority_vote(ann, probs)
    post, _, _ = _posterior(ann, probs, majority)
    top = post == post.max(axis=1, keepdims=True)
    consensus = np.where(top.sum(axis=1) == 1, post.argmax(axis=1), majority)
    post, mw, weight = _posterior(ann, probs, consensus)
    rows = np.arange(ann.n_items)
    label_quality = post[ann.item, ann.label]
    agrees = ann.label == consensus[ann.item]
    agreement_multi = ann.per_annotator(agrees, where=n[ann.item] != 1)  # NaN: seen only on rows with one label
    lqs = ann.per_annotator(label_quality)
    w = mw / (mw + weight.sum() * n.mean() / len(weight))
    return Crowdlab(
        consensus=consensus.astype(np.int64),
        quality=post[rows, consensus],
        agreement=share_agreeing(ann, consensus),
        post=post,
        label_quality=label_quality,
        annotator_quality=w * lqs + (1 - w) * agreement_multi,
        agreement_with_consensus=ann.per_annotator(agrees),
        weight=weight,
        model_weight=float(mw),
        majority=majority,
    )


def _posterior(ann: Annotations, probs: np.ndarray, consensus: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """CROWDLAB's combined probabilities for a given consensus, the model's weight and each annotator's."""
    k = ann.n_classes
    n = ann.num_annotations
    multi = n != 1
    likely = share_agreeing(ann, consensus)[multi].mean()
    unlikely = (1 - likely) / (k - 1)
    sub = consensus[multi]
    constant_error = max(float(np.mean(sub != np.bincount(sub, minlength=k).argmax())), CLIP)
    annotator_error = 1 - _agreement_with_others(ann)
    weight = np.clip(1 - annotator_error / constant_error, CLIP, None)
    model_error = float(np.mean(probs[multi].argmax(axis=1) != sub))
    mw = max(1 - model_error / constant_error, CLIP) * np.sqrt(n.mean())
    w = weight[ann.annotator]
    total = np.bincount(ann.item, weights=w, minlength=ann.n_items)
    post = probs * mw + (total * unlikely)[:, None]
    np.add.at(post, (ann.item, ann.label), w * (likely - unlikely))
    return post / (total + mw)[:, None], float(mw), weight


def _agreement_with_others(ann: Annotations) -> np.ndarray:
    """Each annotator's agreement with the other annotators of the same rows (cleanlab's weighting: rows with
    more annotators count more); annotators who share no row get the mean of the others."""
    n = ann.num_annotations[ann.item]
    same = ann.counts()[ann.item, ann.label] - 1
    m = len(ann.annotators)
    num = np.bincount(ann.annotator, weights=same, minlength=m)
    den = np.bincount(ann.annotator, weights=n - 1, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    lone = np.isnan(out)
    if lone.any() and not lone.all():
        out[lone] = out[~lone].mean()
    return out


def active_scores(ann: Annotations, pred_probs: np.ndarray) -> np.ndarray:
    """ActiveLab: per row, CROWDLAB's consensus quality (on temperature-scaled pred_probs) averaged with 1/K,
    weighted by the row's annotators' and the model's weights against one average annotator. Low: label next."""
    k = ann.n_classes
    n = ann.num_annotations
    if (n == 1).all():
        quality = np.asarray(pred_probs)[np.arange(ann.n_items), majority_vote(ann, pred_probs)]
        mw, weight = 1.0, np.ones(len(ann.annotators))
    else:
        res = crowdlab(ann, temperature_scale(pred_probs, best_temperature(ann, pred_probs)))
        quality, mw, weight = res.quality, res.model_weight, res.weight
    mine = np.bincount(ann.item, weights=weight[ann.annotator], minlength=ann.n_items) + mw
    avg = weight.mean()
    return (quality * mine + avg / k) / (mine + avg)


def temperature_scale(pred_probs: np.ndarray, temperature: float) -> np.ndarray:
    p = np.clip(np.asarray(pred_probs, dtype=np.float64), 1e-30, None)
    p = p / p.sum(axis=1, keepdims=True)
    z = np.log(p) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def best_temperature(ann: Annotations, pred_probs: np.ndarray) -> float:
    """The temperature (cleanlab's coarse grid, then a finer one around the best) minimising the soft cross
    entropy between the annotators' label shares and the scaled pred_probs."""
    shares = ann.counts() / ann.num_annotations[:, None]
    logp = np.log(np.asarray(pred_probs, dtype=np.float64), where=pred_probs > 0, out=np.full(np.shape(pred_probs), -np.inf))

    def loss(t: float) -> float:
        z = logp / t
        z = z - z.max(axis=1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(np.where(shares > 0, shares * logq, 0.0)).sum(axis=1).mean())

    coarse = list(TEMPERATURES)
    i = int(np.argmin([loss(t) for t in coarse]))
    fine = np.array([])
    if i != 0:
        fine = np.append(fine, np.linspace(coarse[i - 1], coarse[i], 4, endpoint=False))
    if i != len(coarse) - 1:
        fine = np.append(fine, np.linspace(coarse[i], coarse[i + 1], 5))
    return float(fine[int(np.argmin([loss(t) for t in fine]))])


@dataclass
class Agreement:
    """Agreement among annotators: ``alpha`` (Krippendorff, nominal) on ``alpha_rows`` rows with 2+ labels,
    ``fleiss`` on ``fleiss_rows`` (None unless every such row has the same number of annotators), and
    ``pairs``: one dict per pair of annotators sharing rows (``a``, ``b``, ``rows``, ``observed``, ``kappa``)."""

    alpha: float | None
    alpha_rows: int
    fleiss: float | None
    fleiss_rows: int
    pairs: list[dict]

    def to_json(self) -> dict:
        return {
            "krippendorff_alpha": self.alpha,
            "alpha_rows": self.alpha_rows,
            "fleiss_kappa": self.fleiss,
            "fleiss_rows": self.fleiss_rows,
            "pairs": self.pairs,
        }


def agreement(ann: Annotations, min_shared: int = 1) -> Agreement:
    """Krippendorff's alpha, Fleiss' kappa and pairwise Cohen's kappa (``Agreement``); pairs with fewer than
    ``min_shared`` shared rows are left out."""
    counts = ann.counts()
    m = counts.sum(axis=1)
    multi = m >= 2
    c = counts[multi]
    alpha = None
    if multi.any():
        o = (c / (m[multi] - 1)[:, None]).T @ c
        o[np.diag_indices_from(o)] -= (c / (m[multi] - 1)[:, None]).sum(axis=0)
        n_c = o.sum(axis=1)
        total = n_c.sum()
        expected = (total**2 - (n_c**2).sum()) / (total - 1)
        alpha = None if expected == 0 else float(1 - (o.sum() - np.trace(o)) / expected)
    fleiss = None
    if multi.any() and len(np.unique(m[multi])) == 1:
        r = m[multi][0]
        p_i = ((c**2).sum(axis=1) - r) / (r * (r - 1))
        p_k = c.sum(axis=0) / c.sum()
        pe = float((p_k**2).sum())
        fleiss = None if pe == 1 else float((p_i.mean() - pe) / (1 - pe))
    return Agreement(alpha, int(multi.sum()), fleiss, int(multi.sum()) if fleiss is not None else 0, _pairs(ann, min_shared))


def _pairs(ann: Annotations, min_shared: int) -> list[dict]:
    """Cohen's kappa for each pair of annotators on the rows both labelled."""
    order = np.lexsort((ann.annotator, ann.item))
    item, who, lab = ann.item[order], ann.annotator[order], ann.label[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    a_idx, b_idx = [], []
    for size in np.unique(sizes[sizes >= 2]):
        s = starts[sizes == size]
        i, j = np.triu_indices(int(size), 1)
        a_idx.append((s[:, None] + i).ravel())
        b_idx.append((s[:, None] + j).ravel())
    if not a_idx:
        return []
    a, b = np.concatenate(a_idx), np.concatenate(b_idx)
    k, m = ann.n_classes, len(ann.annotators)
    pair = who[a] * m + who[b]
    uniq, inverse = np.unique(pair, return_inverse=True)
    conf = np.bincount(inverse * k * k + lab[a] * k + lab[b], minlength=len(uniq) * k * k).reshape(len(uniq), k, k).astype(np.float64)
    out = []
    for p, cm in zip(uniq, conf):
        rows = int(cm.sum())
        if rows < min_shared:
            continue
        observed = float(np.trace(cm) / rows)
        chance = float((cm.sum(axis=1) * cm.sum(axis=0)).sum() / rows**2)
        kappa = None if chance == 1 else (observed - chance) / (1 - chance)
        out.append({"a": ann.annotators[p // m], "b": ann.annotators[p % m], "rows": rows, "observed": observed, "kappa": kappa})
    return out


def crowd_audit(ann: Annotations, pred_probs: np.ndarray, ids: pa.Array) -> tuple[dict[str, pa.Table], dict]:
    """Everything the audit publishes about the annotators: the ``consensus`` table (a row an item), the
    ``annotators`` table, the ``annotator_pairs`` table, and the manifest's ``crowd`` section."""
    probs = np.asarray(pred_probs, dtype=np.float64)
    res = crowdlab(ann, probs) if (ann.num_annotations > 1).any() else None
    majority = res.majority if res is not None else majority_vote(ann, probs)
    ds_post, ds_conf = dawid_skene(ann)
    active = active_scores(ann, probs)
    agree = agreement(ann)
    consensus = res.consensus if res is not None else majority
    prior = ds_post.mean(axis=0)
    tables = {
        "consensus": pa.table(
            {
                "id": ids,
                "num_annotations": pa.array(ann.num_annotations.astype(np.int64)),
                "majority_label": pa.array(majority),
                "consensus_label": pa.array(consensus),
                "consensus_quality": pa.array(res.quality if res is not None else probs[np.arange(ann.n_items), majority]),
                "annotator_agreement": pa.array(share_agreeing(ann, consensus)),
                "active_score": pa.array(active),
                "dawid_skene_label": pa.array(ds_post.argmax(axis=1).astype(np.int64)),
                "dawid_skene_confidence": pa.array(ds_post.max(axis=1)),
            }
        ),
        "annotators": pa.table(
            {
                "annotator": pa.array(ann.annotators, pa.string()),
                "n_labeled": pa.array(np.bincount(ann.annotator, minlength=len(ann.annotators)).astype(np.int64)),
                "quality": pa.array(res.annotator_quality if res is not None else np.full(len(ann.annotators), np.nan), from_pandas=True),
                "agreement_with_consensus": pa.array(ann.per_annotator(ann.label == consensus[ann.item]), from_pandas=True),
                "weight": pa.array(res.weight if res is not None else np.full(len(ann.annotators), np.nan), from_pandas=True),
                "dawid_skene_accuracy": pa.array(np.einsum("k,akk->a", prior, ds_conf)),
            }
        ),
        "annotator_pairs": pa.Table.from_pylist(agree.pairs, schema=PAIRS_SCHEMA),
    }
    info = {
        "annotations": len(ann.item),
        "annotators": len(ann.annotators),
        "rows_with_several": int((ann.num_annotations > 1).sum()),
        "model_weight": res.model_weight if res is not None else None,
        "consensus_differs_from_majority": int((consensus != majority).sum()),
        "dawid_skene_differs_from_majority": int((ds_post.argmax(axis=1) != majority).sum()),
        **{k: v for k, v in agree.to_json().items() if k != "pairs"},
        "annotator_pairs": len(agree.pairs),
    }
    return tables, info


PAIRS_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("rows", pa.int64()), ("observed", pa.float64()), ("kappa", pa.float64())])
