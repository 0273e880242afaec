"""Localized targets (ReLabel): RoIAlign pooling against a brute-force reference, compact label maps in
Parquet, the crop Dataset, and cross-validated label maps that localize real items."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from labelq import schema as S
from labelq.errors import InputError
from labelq.relabel.localized import (
    LabelMaps,
    LocalizedCrops,
    cross_val_label_maps,
    label_maps_table,
    pool_targets,
    random_resized_box,
    read_label_maps,
    roi_align,
    roi_align_reference,
)
from labelq.store import Store


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), samples=st.integers(1, 6), grid=st.integers(1, 9))
def test_roi_align_matches_the_brute_force_reference(seed, samples, grid):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(4, 40)), int(rng.integers(4, 40))
    maps = rng.normal(size=(5, 3, grid, grid)).astype(np.float32)
    boxes = []
    for _ in range(5):  # boxes inside, on the border, partly outside, and tiny
        x1, y1 = rng.uniform(-0.3 * w, w), rng.uniform(-0.3 * h, h)
        boxes.append([x1, y1, x1 + rng.uniform(0.01, 1.2 * w), y1 + rng.uniform(0.01, 1.2 * h)])
    got = roi_align(torch.from_numpy(maps), torch.tensor(boxes, dtype=torch.float32), (h, w), samples).numpy()
    want = np.stack([roi_align_reference(maps[i], boxes[i], (h, w), samples) for i in range(5)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pooling_reads_the_region_of_the_box():
    # a 2-class 4x4 map: class 0 on the left half, class 1 on the right half, of a 20 x 40 image
    dense = np.zeros((1, 2, 4, 4), np.float32)
    dense[0, 0, :, :2], dense[0, 1, :, 2:] = 5.0, 5.0
    maps = LabelMaps.from_scores(dense, 1)
    left = pool_targets(maps, [0], torch.tensor([[0.0, 0.0, 15.0, 20.0]]), (20, 40))[0]
    right = pool_targets(maps, [0], torch.tensor([[25.0, 0.0, 40.0, 20.0]]), (20, 40))[0]
    both = pool_targets(maps, [0], torch.tensor([[0.0, 0.0, 40.0, 20.0]]), (20, 40))[0]
    assert left.argmax() == 0 and right.argmax() == 1 and left[0] > 0.9 and right[1] > 0.9
    assert abs(both[0] - 0.5) < 1e-6 and torch.allclose(left.sum(), torch.tensor(1.0))


def test_label_maps_keep_the_top_k_compactly_and_round_trip_through_parquet(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(6, 10, 5, 5)).astype(np.float32)
    maps = LabelMaps.from_scores(dense, 3)
    assert maps.classes.dtype == np.int16 and maps.scores.dtype == np.float16 and maps.classes.shape == (6, 3, 5, 5)
    np.testing.assert_array_equal(maps.classes, np.argsort(-dense, axis=1)[:, :3])
    assert (maps.scores >= 0).all()
    rebuilt = maps.dense().numpy()  # kept classes keep their softmax order in every cell; the others are <= 0
    np.testing.assert_array_equal(np.argsort(-rebuilt, axis=1, kind="stable")[:, :1], maps.classes[:, :1])
    table = label_maps_table([f"r{i}" for i in range(6)], maps)
    assert table.schema.field("label_map_classes").type == pa.list_(pa.int16(), 75)
    assert table.schema.field("label_map_scores").type == pa.list_(pa.float16(), 75)
    pq.write_table(table, tmp_path / "maps.parquet")
    back = read_label_maps(pq.read_table(tmp_path / "maps.parquet"))
    np.testing.assert_array_equal(back.classes, maps.classes)
    np.testing.assert_array_equal(back.scores, maps.scores)
    with pytest.raises(InputError, match="top-k"):
        LabelMaps.from_scores(dense, 11)


def test_crop_dataset_yields_crops_and_soft_targets():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (4, 28, 56), dtype=np.uint8)
    maps = LabelMaps.from_scores(rng.normal(size=(4, 10, 8, 8)).astype(np.float32), 3)
    ds = LocalizedCrops(images, maps, out=28, scale=(0.2, 1.0))
    crop, target = ds[2]
    assert crop.shape == (1, 28, 28) and 0 <= float(crop.min()) and float(crop.max()) <= 1
    assert target.shape == (10,) and abs(float(target.sum()) - 1) < 1e-5
    assert torch.equal(ds[2][0], crop)  # repeatable
    ds.set_epoch(1)
    assert ds.box(2) != LocalizedCrops(images, maps).box(2) or ds.box(3) != LocalizedCrops(images, maps).box(3)
    x1, y1, x2, y2 = random_resized_box(np.random.default_rng(0), (28, 56), (0.2, 1.0))
    assert 0 <= x1 < x2 <= 56 and 0 <= y1 < y2 <= 28
    with pytest.raises(InputError, match="label maps"):
        LocalizedCrops(images[:3], maps)


def test_cross_validated_label_maps_localize_real_items(digits):
    """Two real digits side by side, labelled with one of them: the pooled target of a crop over one digit
    names that digit far more often than the image's global label does."""
    from labelq.ingest import decode_images

    imgs = decode_images(digits["image"])[..., 0]
    labels = digits[S.LABEL].to_numpy()
    rng = np.random.default_rng(0)
    n = 3000
    a, b = rng.choice(len(imgs), n), rng.choice(len(imgs), n)
    pairs = np.concatenate([imgs[a], imgs[b]], axis=2)  # (n, 8, 16)
    side = rng.integers(0, 2, n)
    global_label = np.where(side == 0, labels[a], labels[b])
    maps = cross_val_label_maps(pairs[..., None], global_label, 10, k=3, grid=4, n_folds=3, epochs=8, width=16)
    left = pool_targets(maps, np.arange(n), torch.tensor([[0.0, 0.0, 8.0, 8.0]] * n), (8, 16)).numpy().argmax(1)
    right = pool_targets(maps, np.arange(n), torch.tensor([[8.0, 0.0, 16.0, 8.0]] * n), (8, 16)).numpy().argmax(1)
    pooled = np.concatenate([left == labels[a], right == labels[b]]).mean()
    global_ = np.concatenate([global_label == labels[a], global_label == labels[b]]).mean()
    assert pooled > global_ + 0.2, (pooled, global_)


def test_label_maps_are_published_as_a_new_version(digits, tmp_path, prefect_harness):
    from labelq.cli import main
    from labelq.pipeline import audit
    from labelq.sql import run_query

    store = tmp_path / "store"
    audit(source="digits", store=str(store), model="logreg")
    r = CliRunner().invoke(main, ["label-maps", "digits", "--store", str(store), "--grid", "2", "--epochs", "1", "--folds", "2"])
    assert r.exit_code == 0, r.output
    v = Store(store).version("digits")
    assert v.number == 2 and v.manifest_json()["label_maps"]["grid"] == 2 and v.manifest_json()["run"]["flow_run_id"]
    maps = read_label_maps(v.read_table("label_maps"))
    assert len(maps) == digits.num_rows and maps.classes.shape[1:] == (3, 2, 2)
    got = run_query(Store(store), "digits", "SELECT count(*) AS n FROM rows WHERE version = 2")
    assert got.to_pylist() == [{"n": digits.num_rows}]
    r = CliRunner().invoke(
        main, ["label-maps", "digits", "--store", str(store), "--top-k", "50", "--no-prefect", "--epochs", "1", "--folds", "2", "--grid", "2"]
    )
    assert r.exit_code == 2 and "top-k" in r.output
    assert len(Store(store).versions("digits")) == 2
