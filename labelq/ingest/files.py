"""Readers for sources on disk: HF ``save_to_disk`` folders, Parquet, CSV, JSONL, image folders."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from ..errors import InputError, MissingDependencyError, SourceNotFoundError
from ..io import parquet_schema
from .builtin import RawSource
from .images import IMAGE_TYPE
from .tokens import read_conll

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_names_from_hf_schema(schema: pa.Schema, column: str) -> list[str] | None:
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    feats = json.loads(raw).get("info", {}).get("features", {})
    feat = feats.get(column) or {}
    if feat.get("_type") in ("Sequence", "List", "LargeList") and isinstance(feat.get("feature"), dict):  # Sequence(ClassLabel): tags
        feat = feat["feature"]
    if feat.get("_type") == "ClassLabel":
        return list(feat["names"])
    return None


def read_hf_disk(path: Path, split: str | None) -> RawSource:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("reading a saved Hugging Face dataset needs the datasets package", "pip install datasets") from exc
    obj = datasets.load_from_disk(str(path))
    if isinstance(obj, datasets.DatasetDict):
        names = [split] if split else list(obj.keys())
        unknown = [n for n in names if n not in obj]
        if unknown:
            raise InputError(f"split {unknown[0]!r} is not in {path}; it has {sorted(obj.keys())}", "pass one of those to --split")
        parts = [obj[n].data.table.append_column("split", pa.array([n] * len(obj[n]))) for n in names]
        features = obj[names[0]].features
        table = pa.concat_tables(parts)
    else:
        features = obj.features
        table = obj.data.table
    table = table.combine_chunks()
    meta = dict(table.schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": features.to_dict()}}).encode()
    return RawSource(table.replace_schema_metadata(meta), description=f"Hugging Face dataset saved at {path}")


def read_parquet(path: Path, defer: bool = False) -> RawSource:
    """A Parquet file, or a folder of them. ``defer``: read only the schema now (``RawSource.deferred_from``);
    ingest reads the columns it needs with ``read_parquet_columns``."""
    try:
        if defer:
            return RawSource(parquet_schema(path).empty_table(), description=f"Parquet {path}", deferred_from=path)
        return RawSource(read_parquet_columns(path), description=f"Parquet {path}")
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"the Parquet source {path} cannot be read ({str(exc).splitlines()[0]})",
            "it is truncated or not Parquet: write it again (or restore it), then audit again",
        ) from exc


def read_parquet_columns(path: Path, columns: list[str] | None = None) -> pa.Table:
    """``columns`` (all when None) of a Parquet file or folder of them."""
    # a single file through ParquetFile: pq.read_table goes through pyarrow.dataset, whose import (with pandas) costs ~58 MB
    return pq.ParquetFile(path).read(columns=columns) if path.is_file() else pq.ParquetDataset(path).read(columns=columns)


CSV_BLOCK_BYTES = 2**20  # pyarrow's default: a row must fit in a block
CSV_MAX_ROW_BYTES = 64 * 2**20  # longer rows are refused: a text of 64 MiB is no example, and a file without line breaks is no table


def _read_csv_rows(path: Path, encoding: str | None) -> pa.Table:
    """``pyarrow.csv.read_csv``, with blocks grown (up to ``CSV_MAX_ROW_BYTES``) when a row does not fit in one."""
    block = CSV_BLOCK_BYTES
    while True:
        try:
            return pcsv.read_csv(path, read_options=pcsv.ReadOptions(encoding=encoding or "utf8", block_size=block))
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block >= CSV_MAX_ROW_BYTES:
                raise
            block *= 4


def _has_longer_line(path: Path, limit: int) -> bool:
    """Whether a line of ``path`` (its bytes, compressed or not) runs longer than ``limit`` bytes; read in 8 MiB chunks."""
    import gzip

    run = 0
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
        while chunk := fh.read(8 * 2**20):
            end = chunk.rfind(b"\n")
            if end < 0:
                run += len(chunk)
            else:
                first = chunk.find(b"\n")
                if run + first > limit or any(len(line) > limit for line in chunk[first + 1 : end].split(b"\n")):
                    return True
                run = len(chunk) - end - 1
            if run > limit:
                return True
    return False


def read_csv(path: Path, encoding: str | None = None) -> RawSource:
    """A CSV file with a header row; ``encoding`` (default UTF-8) is any codec Python knows, e.g. ``latin-1``."""
    if path.stat().st_size == 0:
        raise InputError(f"the CSV file {path} is empty", "give a CSV with a header row and at least one row")
    if encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise InputError(f"unknown encoding {encoding!r}", "use a codec name Python knows, e.g. utf-8, latin-1, cp1252") from exc
    try:
        table = _read_csv_rows(path, encoding)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        text = str(exc)
        if "straddl" in text or _has_longer_line(path, CSV_MAX_ROW_BYTES):
            raise InputError(
                f"the CSV file {path} has a row longer than {CSV_MAX_ROW_BYTES // 2**20} MiB (or no line breaks where rows should end)",
                "check that each row ends with a line break; keep very long inputs in a Parquet file instead",
            ) from exc
        if "UTF8" in text or "utf-8" in text.lower() or isinstance(exc, UnicodeDecodeError):
            raise InputError(
                f"the CSV file {path} is not valid {encoding or 'UTF-8'} text ({text.splitlines()[0]})",
                "pass its encoding, e.g. --encoding latin-1 (or cp1252), or save it as UTF-8",
            ) from exc
        if "Empty CSV" in text:
            raise InputError(f"the CSV file {path} is empty", "give a CSV with a header row and at least one row") from exc
        raise InputError(f"the CSV file {path} could not be read: {text.splitlines()[0]}", "check that every row has as many fields as the header") from exc
    undecoded = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if undecoded:  # pyarrow keeps a column that is not valid text as bytes
        raise InputError(
            f"the CSV file {path} is not valid {encoding or 'UTF-8'} text (columns {undecoded})",
            "pass its encoding, e.g. --encoding latin-1 (or cp1252), or save it as UTF-8",
        )
    return RawSource(table, description=f"CSV {path}")


def _first_bad_json_line(path: Path) -> tuple[int, str] | None:
    """(line number, problem) of the first line of ``path`` that is not a JSON object, or None."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                return number, exc.msg
            if not isinstance(value, dict):
                return number, f"a JSON {type(value).__name__}, not an object"
    return None


def read_jsonl(path: Path) -> RawSource:
    """JSON lines: one object per line (UTF-8)."""
    if path.stat().st_size == 0:
        raise InputError(f"the JSON lines file {path} is empty", "give one JSON object per line")
    try:
        table = pjson.read_json(path)
    except pa.ArrowInvalid as exc:
        bad = _first_bad_json_line(path)
        where = f"line {bad[0]} is not a JSON object ({bad[1]})" if bad else str(exc).splitlines()[0]
        raise InputError(f"the JSON lines file {path} could not be read: {where}", "write one JSON object per line (JSON lines), with the same keys") from exc
    return RawSource(table, description=f"JSON lines {path}")


def read_image_folder(path: Path) -> RawSource:
    """One sub-folder per class; optionally a first level of split folders (train/, test/)."""
    subdirs = sorted(p for p in path.iterdir() if p.is_dir())

    def has_images(d: Path) -> bool:
        return any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())

    if subdirs and all(not has_images(d) for d in subdirs) and any(p.is_dir() for d in subdirs for p in d.iterdir()):
        layout = [(d.name, c) for d in subdirs for c in sorted(p for p in d.iterdir() if p.is_dir())]
    else:
        layout = [(None, c) for c in subdirs]
    ids, labels, splits, images = [], [], [], []
    for split, cdir in layout:
        for f in sorted(cdir.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                ids.append(str(f.relative_to(path)))
                labels.append(cdir.name)
                splits.append(split or "all")
                images.append({"bytes": f.read_bytes(), "path": str(f.relative_to(path))})
    if not ids:
        raise InputError(f"no images found in {path}", "an image folder holds one sub-folder per class with .png/.jpg files inside")
    table = pa.table({"id": ids, "label": labels, "split": splits, "image": pa.array(images, type=IMAGE_TYPE)})
    return RawSource(table, "label", sorted(set(labels)), "id", image_column="image", description=f"image folder {path}")


def read_path(path: Path, split: str | None = None, encoding: str | None = None, defer_inputs: bool = False) -> RawSource:
    """Pick the reader from what is at ``path``. ``defer_inputs``: a Parquet source is read lazily (``read_parquet``)."""
    if not path.exists():
        raise SourceNotFoundError(
            f"the source {str(path)!r} does not exist",
            "pass an existing file or folder, or a built-in dataset name (digits, fashion-mnist, spamassassin, fine-foods)",
        )
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return read_hf_disk(path, split)
        if any(path.rglob("*.parquet")):
            return read_parquet(path, defer_inputs)
        return read_image_folder(path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    readers = {
        ".parquet": read_parquet,
        ".pq": read_parquet,
        ".csv": read_csv,
        ".csv.gz": read_csv,
        ".jsonl": read_jsonl,
        ".ndjson": read_jsonl,
        ".json": read_jsonl,
        ".jsonl.gz": read_jsonl,
        ".conll": read_conll,
        ".conllu": read_conll,
    }
    if suffix not in readers:
        raise InputError(
            f"cannot read {path}: unknown file type {suffix!r}",
            "use Parquet, CSV, JSON lines, CoNLL(-U), a Hugging Face save_to_disk folder or an image folder",
        )
    reader = readers[suffix]
    if reader is read_parquet:
        return read_parquet(path, defer_inputs)
    if reader is read_csv:
        return read_csv(path, encoding)
    if encoding is not None:
        raise InputError(f"--encoding applies to CSV files, not to {path.name}", "leave --encoding out; Parquet is typed, JSON lines and CoNLL are UTF-8")
    return reader(path)
