"""The near-duplicate and outlier check on an image column too large to hold decoded: whole, or a block
of images at a time.

The data: N Fashion-MNIST images scaled up to S x S pixels in RGB (PNG-encoded, like an image folder's
files), so that the decoded column is large (20,000 x 128 x 128 x 3: 983 MB). ``check_neighbors`` runs
twice, each in its own process (wall time, peak resident memory): with the whole column decoded at once
(the path below ``DECODE_BUDGET``), and read a block of about 32 MiB decoded at a time (above it: three passes,
for the content hashes, the mean and PCA sample, and the projection). The two must give the same sets,
outliers and scores.

    python bench/neighbor_decode.py [--rows 20000] [--size 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import measured, offline_env, print_table  # noqa: E402


def make_images(path: str, rows: int, size: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from labelq.ingest import IngestOptions, load_examples
    from labelq.ingest.images import decode_images, encode_png

    examples = load_examples("fashion-mnist", IngestOptions(split="train")).slice(0, rows)
    small = decode_images(examples["image"])[..., 0]
    big = np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR).convert("RGB")) for img in small])
    pq.write_table(pa.table({"id": examples["id"], "label": examples["label"], "image": encode_png(big)}), path)
    return {}


def check(path: str, budget: int) -> dict:
    import labelq.detect.neighbors as nb
    from labelq.ingest import load_examples

    examples = load_examples(path)
    nb.DECODE_BUDGET = budget
    c = nb.check_neighbors(examples)
    return {"set_id": c.set_id.tolist(), "score": c.outlier_score.tolist(), "outliers": int(c.is_outlier.sum()), "sets": c.info.near_duplicate_sets}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()
    offline_env()
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/images.parquet"
        measured(make_images, path, a.rows, a.size)  # in a child: the parent stays small
        decoded_mb = a.rows * a.size * a.size * 3 / 2**20
        whole = measured(check, path, 2**62)
        blocks = measured(check, path, 0)
        same = whole["set_id"] == blocks["set_id"] and np.allclose(whole["score"], blocks["score"], rtol=0, atol=1e-6)
        print_table(
            [
                {"decoding": "whole column", "s": whole["wall_s"], "peak MiB": whole["peak_rss_mib"], "sets": whole["sets"], "outliers": whole["outliers"]},
                {
                    "decoding": "32 MiB of images at a time",
                    "s": blocks["wall_s"],
                    "peak MiB": blocks["peak_rss_mib"],
                    "sets": blocks["sets"],
                    "outliers": blocks["outliers"],
                },
            ],
            f"{a.rows:,} images of {a.size} x {a.size} RGB ({decoded_mb:,.0f} MiB decoded); same results: {same}",
        )


if __name__ == "__main__":
    main()
