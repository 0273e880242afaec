"""Models for out-of-sample predictions, registered by name.

A ``ModelSpec`` is a registered name plus parameters; ``spec.build(seed)`` returns a fresh
scikit-learn-style classifier (``fit``/``predict_proba``/``classes_``); ``spec.features(examples)``
turns an examples table into that model's input. ``spec.config()`` is what the fold cache keys on.

| name       | modality | model |
|------------|----------|-------|
| cnn        | image    | small CNN in torch (``CNNClassifier``), GPU when present |
| tfidf-logreg | text   | TF-IDF (word 1-2 grams, sublinear tf) + logistic regression |
| hgb        | tabular  | histogram gradient boosting (``MarginHGB``: keeps its training rows' margins) |
| logreg     | tabular or image | standardized features + logistic regression |
| embed-logreg | text or image | pretrained embeddings (``labelq.predict.embeddings``: MiniLM, EfficientNet-Lite0) + logistic regression |

Regressors (``task="regression"``: ``fit``/``predict``), for a number a row (label kind ``regression``):

| name       | modality | model |
|------------|----------|-------|
| hgb-regressor | tabular | histogram gradient boosting, squared error |
| ridge      | tabular or image | standardized features + ridge, its penalty chosen by leave-one-out (``RidgeCV``) |
| tfidf-ridge | text    | TF-IDF (word 1-2 grams, sublinear tf) + ridge, penalty by leave-one-out |
| embed-ridge | text or image | pretrained embeddings + ridge, penalty by leave-one-out |

Taggers (``task="tokens"``: a classifier of token rows that reads their sentences), for token tags (label kind ``tokens``):

| name       | modality | model |
|------------|----------|-------|
| crf        | tokens   | a linear-chain CRF (``labelq.predict.crf``, sklearn-crfsuite): each token's marginal tag probabilities |
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..labelkind import LabelKind, kind_named

# bump when a model's code changes in a way that changes its predictions: invalidates cached folds
MODEL_CODE_VERSION = 1


@dataclass(frozen=True)
class ModelEntry:
    modalities: tuple[str, ...]
    factory: Callable[..., Any]
    defaults: dict[str, Any]
    task: str = "classes"  # what it learns: "classes" (predict_proba) or "regression" (predict)


MODELS: dict[str, ModelEntry] = {}
DEFAULT_MODEL = {"image": "cnn", "text": "tfidf-logreg", "tabular": "hgb"}


def register_model(name: str, modalities: tuple[str, ...], defaults: dict[str, Any] | None = None, task: str = "classes"):
    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        MODELS[name] = ModelEntry(modalities, factory, dict(defaults or {}), task)
        return factory

    return deco


@register_model("cnn", ("image",), {"epochs": 6, "batch_size": 128, "lr": 3e-3, "width": 16})
def _cnn(seed: int, **params: Any):
    from .torch_cnn import CNNClassifier

    return CNNClassifier(seed=seed, **params)


@register_model("tfidf-logreg", ("text",), {"max_features": 200_000, "ngram_max": 2, "C": 10.0})
def _tfidf_logreg(seed: int, max_features: int, ngram_max: int, C: float):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, ngram_max), min_df=2, max_features=max_features, dtype=np.float32),
        LogisticRegression(C=C, max_iter=2000, random_state=seed),
    )


@register_model("hgb", ("tabular",), {"max_iter": 200, "learning_rate": 0.1})
def _hgb(seed: int, **params: Any):
    from .boosting import MarginHGB  # scikit-learn's, keeping its training rows' margins (the margin detector)

    return MarginHGB(random_state=seed, early_stopping=False, **params)


@register_model("logreg", ("tabular", "image"), {"C": 1.0})
def _logreg(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


@register_model("embed-logreg", ("text", "image"), {"C": 1.0})
def _embed_logreg(seed: int, C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


@register_model("crf", ("tokens",), {"c1": 0.1, "c2": 0.1, "max_iterations": 100}, task="tokens")
def _crf(seed: int, **params: Any):
    from .crf import TokenCRF  # a linear-chain CRF over the token rows of a sentence (sklearn-crfsuite)

    return TokenCRF(seed=seed, **params)


RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)  # the penalties RidgeCV chooses among, by leave-one-out error


@register_model("hgb-regressor", ("tabular",), {"max_iter": 200, "learning_rate": 0.1}, task="regression")
def _hgb_regressor(seed: int, **params: Any):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=seed, early_stopping=False, **params)


@register_model("ridge", ("tabular", "image"), {}, task="regression")
def _ridge(seed: int):
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))


@register_model("tfidf-ridge", ("text",), {"max_features": 200_000, "ngram_max": 2}, task="regression")
def _tfidf_ridge(seed: int, max_features: int, ngram_max: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, ngram_max), min_df=2, max_features=max_features, dtype=np.float32),
        RidgeCV(alphas=RIDGE_ALPHAS),
    )


@register_model("embed-ridge", ("text", "image"), {}, task="regression")
def _embed_ridge(seed: int):
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=RIDGE_ALPHAS)


EMBEDDING_MODELS = {"embed-logreg", "embed-ridge"}  # models whose input is the rows' pretrained embeddings


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name and its parameters (defaults filled in)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params, "code_version": MODEL_CODE_VERSION}

    def config_json(self) -> str:
        return json.dumps(self.config(), sort_keys=True)

    def build(self, seed: int):
        return MODELS[self.name].factory(seed=seed, **self.params)

    def features(self, examples: pa.Table, cache_dir: Path | None = None) -> np.ndarray:
        """The model's input for every row: images ``(N, H, W, C)`` uint8, texts ``(N,)``, features ``(N, F)``,
        or for an embedding model the rows' embeddings ``(N, D)`` (cached under ``cache_dir``)."""
        info = S.info_of(examples)
        if self.name in EMBEDDING_MODELS:
            from .embeddings import embed_inputs, encoder_for

            return embed_inputs(read_inputs(examples), encoder_for(info.modality), cache_dir)
        X = read_inputs(examples)
        return X.reshape(len(X), -1).astype(np.float32) if info.modality == "image" and self.name in ("logreg", "ridge") else X


def read_inputs(examples: pa.Table) -> np.ndarray:
    """The rows' inputs: decoded images ``(N, H, W, C)`` uint8, texts ``(N,)`` object, numeric features ``(N, F)`` float64, or
    token rows ``(N, 3)`` object (token, sentence id, position)."""
    info = S.info_of(examples)
    if info.modality == "image":
        from ..ingest.images import decode_images

        return decode_images(examples[info.inputs[0]], ids=examples[S.ID].to_pylist())
    if info.modality == "text":
        return np.asarray(examples[info.inputs[0]].fill_null("").to_pylist(), dtype=object)
    if info.modality == "tokens":  # [token, sentence_id, position] a row, in sentence order (labelq.ingest.tokens)
        return np.column_stack([np.asarray(examples[c].to_pylist(), dtype=object) for c in info.inputs])
    cols = []
    for name in info.inputs:
        col = examples[name]
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise InputError(f"feature column {name!r} has type {col.type}, not numeric", "encode it as numbers or leave it out of --feature-columns")
        cols.append(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
    return np.column_stack(cols)


def resolve_model(model: str | ModelSpec | None, modality: str, params: dict[str, Any] | None = None, kind: LabelKind | None = None) -> ModelSpec:
    """``'auto'``/``None`` -> the modality's default model for the ``kind`` of label (one class a row when not
    given); a name -> that model with defaults + ``params``, if it can learn that kind of label."""
    if isinstance(model, ModelSpec):
        return model
    kind = kind or kind_named("single")
    name = kind.default_model(modality) if model in (None, "auto") else model
    kind.check_model(name, modality)
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}", f"use one of {sorted(MODELS)} (or 'auto')")
    entry = MODELS[name]
    if entry.task != kind.model_task:
        fits = [n for n, e in MODELS.items() if e.task == kind.model_task and modality in e.modalities]
        raise InputError(f"model {name!r} learns {entry.task}, and this dataset's labels are {kind.what}", f"use one of {fits} (or 'auto')")
    if modality not in entry.modalities:
        raise InputError(
            f"model {name!r} does not take {modality} inputs",
            f"use one of {[n for n, e in MODELS.items() if modality in e.modalities and e.task == entry.task]}",
        )
    return ModelSpec(name, {**entry.defaults, **check_model_params(name, params)})


def check_model_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """``params`` of the registered model ``name``, checked against its defaults: known names, the
    defaults' types (a whole number where the default is one), and numbers > 0 (every built-in
    model's numeric parameters are sizes, counts or rates)."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}", f"use one of {sorted(MODELS)} (or 'auto')")
    defaults = MODELS[name].defaults
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise InputError(f"model {name!r} has no parameters {sorted(unknown)}", f"its parameters are {sorted(defaults)}")
    for key, value in params.items():
        default = defaults[key]
        fix = f"pass a number, e.g. --model-param {key}={default}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"model parameter {key}={value!r} of {name!r} must be true or false", f"e.g. --model-param {key}={str(default).lower()}")
        elif isinstance(default, (int, float)):
            whole = isinstance(default, int)
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not math.isfinite(value):
                raise InputError(f"model parameter {key}={value!r} of {name!r} must be a {'whole number' if whole else 'number'}", fix)
            if value <= 0:
                raise InputError(f"model parameter {key}={value!r} of {name!r} must be greater than 0", fix)
    return params
