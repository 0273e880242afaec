"""Images as Hugging Face ``Image`` values (struct of encoded ``bytes`` and ``path``) and back to arrays."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pyarrow as pa

from ..errors import InputError

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def encode_png(images: np.ndarray) -> pa.Array:
    """``(N, H, W)`` or ``(N, H, W, C)`` uint8 arrays -> an ``IMAGE_TYPE`` array of PNG bytes."""
    from PIL import Image

    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        out.append({"bytes": buf.getvalue(), "path": None})
    return pa.array(out, type=IMAGE_TYPE)


def _encoded_bytes(value) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            with open(value["path"], "rb") as fh:
                return fh.read()
        return None
    return bytes(value)


def as_png(value) -> bytes:
    """An image value (encoded bytes, or a Hugging Face ``Image`` struct) re-encoded as PNG, which every browser shows."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(_encoded_bytes(value))).save(buf, format="PNG")
    return buf.getvalue()


def _which(value, i: int, ids) -> str:
    """How to name row ``i``'s image in an error: its path, its id, and the row number."""
    path = value.get("path") if isinstance(value, dict) else None
    parts = [f"{path!r}"] if path else []
    if ids is not None:
        parts.append(f"id {ids[i]!r}")
    parts.append(f"row {i}")
    return f"image {parts[0]} ({', '.join(parts[1:])})" if len(parts) > 1 else f"image of {parts[0]}"


def decode_images(column: pa.ChunkedArray | pa.Array, size: tuple[int, int] | None = None, ids=None) -> np.ndarray:
    """Decode an image column to a uint8 array ``(N, H, W, C)``, C = 1 (grayscale) or 3 (RGB).

    Images of different sizes are resized to ``size`` or, by default, to the most common size.
    ``ids`` (one per row) name a bad image in the error, beside its path. Two passes: the headers
    (sizes and modes), then each image decoded straight into the output, so no more than one decoded
    image is held beside it (holding them all as PIL images took ~2x the output at 70k images).
    """
    values = column.to_pylist()
    raws = _raws(values, ids)
    if not raws:
        return np.zeros((0, 1, 1, 1), dtype=np.uint8)
    return _decode(raws, values, ids, 0, *_layout(raws, values, ids, size))


def decode_blocks(column: pa.ChunkedArray | pa.Array, rows: int, ids=None, layout: tuple[tuple[int, int], bool] | None = None):
    """``(first row, uint8 (n, H, W, C))`` blocks of ``rows`` images, decoded one block at a time in the size
    and mode ``decode_images`` gives the whole column (``layout``, from ``image_layout`` when not given), so
    the blocks stack to its array: for passes over more images than fit in memory decoded."""
    layout = layout or image_layout(column, rows, ids)
    for start in range(0, len(column), rows):
        values = column.slice(start, rows).to_pylist()
        yield start, _decode(_raws(values, ids, start), values, ids, start, *layout)


def image_layout(column: pa.ChunkedArray | pa.Array, rows: int = 4096, ids=None) -> tuple[tuple[int, int], bool]:
    """(the most common size, whether every image is grayscale) of a non-empty image column, from its headers, ``rows`` at a time."""
    sizes, gray = Counter(), True
    for start in range(0, len(column), rows):
        values = column.slice(start, rows).to_pylist()
        for img in (_opened(i, raw, values, ids, start) for i, raw in enumerate(_raws(values, ids, start))):
            sizes[img.size] += 1
            gray = gray and img.mode in GRAY_MODES
    return sizes.most_common(1)[0][0], gray


GRAY_MODES = ("L", "1", "I", "I;16")


def _raws(values: list, ids, offset: int = 0) -> list[bytes]:
    """The encoded bytes of ``values``, the column's rows from ``offset`` on (``ids``: the whole column's)."""
    raws = []
    for i, value in enumerate(values):
        try:
            raw = _encoded_bytes(value)
        except OSError as exc:
            raise InputError(f"{_which(value, offset + i, ids)} could not be read: {exc}", "restore that file, or drop the row") from exc
        if raw is None:
            raise InputError(f"{_which(value, offset + i, ids)} is empty", "drop rows without an image")
        raws.append(raw)
    return raws


def _opened(i: int, raw: bytes, values: list, ids, offset: int = 0):
    from PIL import Image

    try:
        return Image.open(io.BytesIO(raw))
    except Exception as exc:  # PIL raises several types for undecodable data
        raise InputError(f"{_which(values[i], offset + i, ids)} could not be decoded: {exc}", "remove or re-encode that image") from exc


def _layout(raws: list[bytes], values: list, ids, size: tuple[int, int] | None) -> tuple[tuple[int, int], bool]:
    """(the output size: ``size``, or the most common; whether every image is grayscale), from the headers only."""
    headers = [(img.size, img.mode) for img in (_opened(i, raw, values, ids) for i, raw in enumerate(raws))]
    return size or Counter(s for s, _ in headers).most_common(1)[0][0], all(m in GRAY_MODES for _, m in headers)


def _decode(raws: list[bytes], values: list, ids, offset: int, size: tuple[int, int], gray: bool) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(raws), size[1], size[0], *(() if gray else (3,))), dtype=np.uint8)
    for i, raw in enumerate(raws):
        img = _opened(i, raw, values, ids, offset)
        try:
            img.load()
        except Exception as exc:
            raise InputError(f"{_which(values[i], offset + i, ids)} could not be decoded: {exc}", "remove or re-encode that image") from exc
        img = img.convert("L" if gray else "RGB")
        if img.size != size:
            img = img.resize(size, Image.BILINEAR)
        out[i] = np.asarray(img, dtype=np.uint8)
    return out[..., None] if gray else out
