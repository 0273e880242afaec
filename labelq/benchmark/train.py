"""Models labelq trains itself for a benchmark report, from a TOML file:

    train = "fashion-mnist"        # a source, as for `labelq audit` (built-in name or path)
    split = "train"                # optional: the rows of that split
    label_column = "tags"          # optional, as --label-column; label_separator = "|" as --label-separator
    seed = 0

    [[model]]
    name = "logistic regression"   # the name in the report
    model = "logreg"               # a registered model: cnn, tfidf-logreg, hgb, logreg
    params = { C = 0.5 }           # optional

Each model is fitted on the training source and predicts every row of the test-set version; the
result is the predictions table (``id``, ``model``, ``pred_probs``) the report reads. The class names
of the training source must be those of the test set. For a multi-label test set the training source
carries tags too, and each model is trained one-vs-rest (a probability per tag).
"""

from __future__ import annotations

import logging
import time
import tomllib
from pathlib import Path

import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..labelkind import kind_of
from ..store import Version

log = logging.getLogger(__name__)


def load_models_config(path: str | Path) -> dict:
    path = Path(path)
    try:
        cfg = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"models file {path} does not exist", "write a TOML file with train = SOURCE and [[model]] tables") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from exc
    if "train" not in cfg or not cfg.get("model"):
        raise InputError(f"{path} needs train = SOURCE and at least one [[model]] table", "see `labelq report benchmark --help`")
    names = [m.get("name") or m.get("model") for m in cfg["model"]]
    if len(set(names)) != len(names):
        raise InputError(f"model names repeat in {path}: {names}", "give every [[model]] a distinct name")
    for m in cfg["model"]:
        if "model" not in m:
            raise InputError(f"a [[model]] table in {path} has no model = NAME", "use one of cnn, tfidf-logreg, hgb, logreg")
    return cfg


def train_predictions(cfg: dict, version: Version) -> pa.Table:
    """Fit every configured model on the training source; their probabilities on the version's rows."""
    from ..ingest import IngestOptions, load_examples
    from ..predict.models import resolve_model

    train = load_examples(cfg["train"], IngestOptions(split=cfg.get("split"), label_column=cfg.get("label_column"), label_separator=cfg.get("label_separator")))
    test = version.read()
    info, tinfo = S.info_of(test), S.info_of(train)
    if tinfo.class_names != info.class_names:
        raise InputError(
            f"the training source's classes {tinfo.class_names} differ from the test set's {info.class_names}",
            "train on data with the same classes, in the same order",
        )
    if tinfo.modality != info.modality:
        raise InputError(f"the training source holds {tinfo.modality} rows, the test set {info.modality}")
    kind = kind_of(info)
    if kind_of(tinfo) != kind:
        raise InputError(
            f"the training source and the test set differ in kind: one carries {kind_of(tinfo).what}, the other {kind.what}", "train on data of the same kind"
        )
    seed = int(cfg.get("seed", 0))
    y = kind.labels(train)
    ids = test[S.ID].to_pylist()
    k = len(info.class_names)
    parts = []
    for m in cfg["model"]:
        name = m.get("name") or m["model"]
        spec = resolve_model(m["model"], info.modality, m.get("params"), kind)
        t0 = time.perf_counter()
        probs = kind.fit_predict(spec.build(seed), spec.features(train), y, spec.features(test), k)
        log.info("benchmark model %s (%s) trained on %d rows in %.1fs", name, spec.name, len(y), time.perf_counter() - t0)
        parts.append(pa.table({"id": ids, "model": [name] * len(ids), "pred_probs": pa.array(list(probs), pa.list_(pa.float32(), k))}))
    return pa.concat_tables(parts)
