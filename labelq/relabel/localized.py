"""Localized multi-labels for images (ReLabel, Yun et al. 2021): label maps and label pooling.

1. **Label maps.** ``FCNLabeler`` is a fully-convolutional network: convolutions and a 1x1 class layer
   give a class-score map, whose global average is trained against the image label. Without the
   average, the map says which class each place of the image looks like. ``cross_val_label_maps``
   trains it with labelq's stratified folds, so every image's map comes from a model that never saw
   that image. Of each map, the top ``k`` classes of every cell of an ``S x S`` grid are kept, as class
   indices (int16) and scores (float16), shape ``(k, S, S)`` per image (``LabelMaps``; Parquet with
   ``label_maps_table`` / ``read_label_maps``).

   Scores are logits *relative to the cell's (k+1)-th class*: the kept ones are >= 0 and every class
   that was not kept is <= 0, so filling the missing classes with 0 (as ReLabel does) is an upper bound
   for them, not an arbitrary value. The shift is per cell and does not change a cell's softmax.

2. **Label pooling.** For a crop box ``(x1, y1, x2, y2)`` in pixels of the original image, the crop's
   soft target is the dense map (top-k scattered, 0 elsewhere) pooled over the box with RoIAlign
   (1 x 1 output, ``samples x samples`` bilinear samples, ``aligned=True`` pixel convention as in
   torchvision), followed by a softmax (``pool_targets``). ``roi_align_reference`` is the same
   definition written as plain loops, used to verify it.

3. **Training.** ``LocalizedCrops`` is a torch ``Dataset`` yielding ``(crop, soft target)``: a random
   resized crop of the image and its pooled target, ready for a soft cross-entropy.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa

from .. import schema as S
from ..errors import InputError
from ..labelkind import check_supports
from ..manifest import LabelMapsSection
from ..predict.torch_cnn import CNNClassifier
from ..runner import InProcess, Runner, step
from ..store import Store, Version

log = logging.getLogger(__name__)

LABEL_MAP_CLASSES = "label_map_classes"
LABEL_MAP_SCORES = "label_map_scores"
MAP_META_KEY = b"labelq_label_maps"


def _fcn(in_channels: int, n_classes: int, width: int):
    import torch.nn as nn

    def block(cin: int, cout: int) -> list:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class FCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*block(in_channels, width), nn.MaxPool2d(2), *block(width, 2 * width), nn.MaxPool2d(2), *block(2 * width, 4 * width))
            self.classify = nn.Conv2d(4 * width, n_classes, 1)

        def dense(self, x):
            return self.classify(self.features(x))

        def forward(self, x):
            return self.dense(x).mean(dim=(2, 3))

    return FCN()


class FCNLabeler(CNNClassifier):
    """The label-map annotator: ``fit`` as a classifier (global average of the score map), ``score_maps`` dense."""

    def _network(self, in_channels: int, n_classes: int):
        return _fcn(in_channels, n_classes, self.width)

    def score_maps(self, X: np.ndarray, grid: int) -> np.ndarray:
        """Class-score maps ``(N, K, grid, grid)`` (logits, adaptive-average-pooled to the grid)."""
        import torch.nn.functional as F

        return np.concatenate(self._infer(X, lambda model, xb: F.adaptive_avg_pool2d(model.dense(xb).float(), grid), batch=512))


class LabelMaps:
    """Top-k label maps: ``classes`` int16 and ``scores`` float16, both ``(N, k, S, S)``; ``n_classes`` K."""

    def __init__(self, classes: np.ndarray, scores: np.ndarray, n_classes: int) -> None:
        if classes.shape != scores.shape or classes.ndim != 4 or classes.shape[2] != classes.shape[3]:
            raise InputError(f"label maps need equal (N, k, S, S) classes and scores, got {classes.shape} and {scores.shape}")
        self.classes = classes.astype(np.int16, copy=False)
        self.scores = scores.astype(np.float16, copy=False)
        self.n_classes = int(n_classes)

    @property
    def k(self) -> int:
        return self.classes.shape[1]

    @property
    def grid(self) -> int:
        return self.classes.shape[2]

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def from_scores(cls, maps: np.ndarray, k: int) -> LabelMaps:
        """Keep the top ``k`` of dense score maps ``(N, K, S, S)``, relative to each cell's (k+1)-th score."""
        n, kk, s, _ = maps.shape
        if not 1 <= k <= kk:
            raise InputError(f"top-k must be between 1 and the number of classes ({kk}), got {k}")
        order = np.argsort(-maps, axis=1, kind="stable")
        top = order[:, :k]
        scores = np.take_along_axis(maps, top, axis=1)
        floor = np.take_along_axis(maps, order[:, k : k + 1], axis=1) if k < kk else scores[:, -1:]
        return cls(top, scores - floor, kk)

    def dense(self, index=slice(None)):
        """The dense ``(n, K, S, S)`` float32 torch tensor of some maps (0 for classes not kept)."""
        import torch

        cls_ = torch.from_numpy(self.classes[index].astype(np.int64))
        sc = torch.from_numpy(self.scores[index].astype(np.float32))
        if cls_.ndim == 3:
            cls_, sc = cls_[None], sc[None]
        out = torch.zeros((len(cls_), self.n_classes, self.grid, self.grid), dtype=torch.float32)
        return out.scatter_(1, cls_, sc)


def roi_align(maps, boxes, image_size: tuple[int, int], samples: int = 4):
    """RoIAlign to one bin: ``maps`` ``(B, K, S, S)``, ``boxes`` ``(B, 4)`` (x1, y1, x2, y2) pixels of an
    image of ``image_size`` = (height, width). Returns ``(B, K)``: the mean of ``samples x samples``
    bilinear samples at the centres of a regular grid over the box (torchvision's ``aligned=True``)."""
    import torch

    b, _, s_h, s_w = maps.shape
    h, w = image_size
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    scale_x, scale_y = s_w / w, s_h / h
    t = (torch.arange(samples, dtype=torch.float32) + 0.5) / samples
    xs = (x1[:, None] + (x2 - x1)[:, None] * t) * scale_x - 0.5  # (B, n) in map coordinates
    ys = (y1[:, None] + (y2 - y1)[:, None] * t) * scale_y - 0.5
    yy, xx = ys[:, :, None].expand(b, samples, samples), xs[:, None, :].expand(b, samples, samples)
    valid = (yy >= -1) & (yy <= s_h) & (xx >= -1) & (xx <= s_w)
    yy, xx = yy.clamp(0, s_h - 1), xx.clamp(0, s_w - 1)
    y0, x0 = yy.floor().long(), xx.floor().long()
    y1i, x1i = (y0 + 1).clamp(max=s_h - 1), (x0 + 1).clamp(max=s_w - 1)
    ly, lx = yy - y0, xx - x0
    flat = maps.reshape(b, maps.shape[1], -1)

    def at(yi, xi):
        idx = (yi * s_w + xi).reshape(b, 1, -1).expand(-1, maps.shape[1], -1)
        return flat.gather(2, idx).reshape(b, maps.shape[1], samples, samples)

    val = (
        at(y0, x0) * ((1 - ly) * (1 - lx))[:, None]
        + at(y0, x1i) * ((1 - ly) * lx)[:, None]
        + at(y1i, x0) * (ly * (1 - lx))[:, None]
        + at(y1i, x1i) * (ly * lx)[:, None]
    )
    val = val * valid[:, None].float()
    return val.mean(dim=(2, 3))


def roi_align_reference(fmap: np.ndarray, box: tuple[float, float, float, float], image_size: tuple[int, int], samples: int = 4) -> np.ndarray:
    """The same definition as ``roi_align`` for one ``(K, S, S)`` map and one box, with plain loops."""
    k, s_h, s_w = fmap.shape
    h, w = image_size
    x1, y1, x2, y2 = box
    total = np.zeros(k)
    for iy in range(samples):
        for ix in range(samples):
            y = (y1 + (y2 - y1) * (iy + 0.5) / samples) * s_h / h - 0.5
            x = (x1 + (x2 - x1) * (ix + 0.5) / samples) * s_w / w - 0.5
            if y < -1 or y > s_h or x < -1 or x > s_w:
                continue
            y, x = min(max(y, 0.0), s_h - 1), min(max(x, 0.0), s_w - 1)
            y0, x0 = math.floor(y), math.floor(x)
            y1_, x1_ = min(y0 + 1, s_h - 1), min(x0 + 1, s_w - 1)
            ly, lx = y - y0, x - x0
            total += fmap[:, y0, x0] * (1 - ly) * (1 - lx) + fmap[:, y0, x1_] * (1 - ly) * lx + fmap[:, y1_, x0] * ly * (1 - lx) + fmap[:, y1_, x1_] * ly * lx
    return total / samples**2


def pool_targets(maps: LabelMaps, index, boxes, image_size: tuple[int, int], samples: int = 4):
    """Soft targets ``(B, K)`` (torch) of crops ``boxes`` of images ``index``: RoIAlign on the label maps, then softmax."""
    import torch

    return torch.softmax(roi_align(maps.dense(index), boxes, image_size, samples), dim=1)


def random_resized_box(
    rng: np.random.Generator, image_size: tuple[int, int], scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> tuple[float, float, float, float]:
    """A crop box (x1, y1, x2, y2) as torchvision's RandomResizedCrop draws it (area share ``scale``, aspect ``ratio``)."""
    h, w = image_size
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return float(x), float(y), float(x + cw), float(y + ch)
    side = min(h, w)
    x, y = (w - side) // 2, (h - side) // 2
    return float(x), float(y), float(x + side), float(y + side)


class LocalizedCrops:
    """A torch ``Dataset`` of ``(crop, soft target)``: crop ``(C, out, out)`` float in [0, 1], target ``(K,)``.

    ``images`` uint8 ``(N, H, W[, C])``; ``maps`` their ``LabelMaps``. Each item draws a random resized
    crop (``scale``, ``ratio``) from a generator seeded by (``seed``, epoch, index), so runs repeat;
    ``set_epoch`` gives new crops. ``samples``: RoIAlign samples per side.
    """

    def __init__(
        self,
        images: np.ndarray,
        maps: LabelMaps,
        out: int = 28,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        samples: int = 4,
        seed: int = 0,
    ) -> None:
        if len(images) != len(maps):
            raise InputError(f"{len(images)} images but {len(maps)} label maps", "pass the maps made for these images, in the same order")
        self.images = images if images.ndim == 4 else images[..., None]
        self.maps, self.out, self.scale, self.ratio, self.samples, self.seed, self.epoch = maps, out, scale, ratio, samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def box(self, i: int) -> tuple[float, float, float, float]:
        return random_resized_box(np.random.default_rng((self.seed, self.epoch, i)), self.images.shape[1:3], self.scale, self.ratio)

    def __getitem__(self, i: int):
        import torch

        box = self.box(i)
        crop = crop_resize(self.images[i], box, self.out)
        target = pool_targets(self.maps, i, torch.tensor([box]), self.images.shape[1:3], self.samples)[0]
        return crop, target


def crop_resize(image: np.ndarray, box: tuple[float, float, float, float], out: int):
    """The box of a uint8 ``(H, W, C)`` image, resized (bilinear) to ``(C, out, out)`` float in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x1, y1, x2, y2 = (int(round(v)) for v in box)
    patch = torch.from_numpy(np.ascontiguousarray(image[y1:y2, x1:x2].transpose(2, 0, 1))).float().div_(255.0)
    return F.interpolate(patch[None], size=(out, out), mode="bilinear", align_corners=False)[0]


def cross_val_label_maps(
    images: np.ndarray, labels: np.ndarray, n_classes: int, k: int = 3, grid: int = 8, n_folds: int = 3, seed: int = 0, **params
) -> LabelMaps:
    """Label maps for every image from ``FCNLabeler``s trained on the other folds: labelq's own stratified,
    seeded partition (``labelq.predict.make_folds``, the audit's)."""
    from ..predict import make_folds
    from ..validation import check_n_folds

    labels = np.asarray(labels)
    folds = make_folds(labels, check_n_folds(n_folds), seed)
    maps = np.zeros((len(images), n_classes, grid, grid), dtype=np.float32)
    for f in range(n_folds):
        train, held = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        log.info("label maps: fold %d/%d (%d train, %d held out)", f + 1, n_folds, len(train), len(held))
        model = FCNLabeler(seed=seed + f, **params).fit(images[train], labels[train])
        dense = model.score_maps(images[held], grid)
        full = np.full((len(held), n_classes, grid, grid), dense.min() - 1, dtype=np.float32)
        full[:, model.classes_] = dense  # a fold missing a class never scores it
        maps[held] = full
    return LabelMaps.from_scores(maps, k)


def label_maps_table(ids: list[str] | pa.Array, maps: LabelMaps) -> pa.Table:
    """``id``, ``label_map_classes`` int16[k*S*S], ``label_map_scores`` float16[k*S*S] (row-major k, S, S)."""
    n, size = len(maps), maps.k * maps.grid * maps.grid
    cls_ = pa.FixedSizeListArray.from_arrays(pa.array(maps.classes.reshape(-1), pa.int16()), size)
    sc = pa.FixedSizeListArray.from_arrays(pa.array(maps.scores.reshape(-1), pa.float16()), size)
    table = pa.table({S.ID: pa.array(ids, pa.string()), LABEL_MAP_CLASSES: cls_, LABEL_MAP_SCORES: sc})
    assert table.num_rows == n
    meta = f'{{"k": {maps.k}, "grid": {maps.grid}, "n_classes": {maps.n_classes}, "layout": "k,S,S"}}'.encode()
    return table.replace_schema_metadata({MAP_META_KEY: meta})


def read_label_maps(table: pa.Table) -> LabelMaps:
    import json

    meta = (table.schema.metadata or {}).get(MAP_META_KEY)
    if meta is None:
        raise InputError("this table has no label-map metadata", "write label maps with labelq.relabel.localized.label_maps_table")
    m = json.loads(meta)
    shape = (table.num_rows, m["k"], m["grid"], m["grid"])
    cls_ = table[LABEL_MAP_CLASSES].combine_chunks().flatten().to_numpy().reshape(shape)
    sc = table[LABEL_MAP_SCORES].combine_chunks().flatten().to_numpy().reshape(shape)
    return LabelMaps(cls_, sc, m["n_classes"])


@step("label-maps")
def label_maps_step(version: Version, k: int = 3, grid: int = 8, n_folds: int = 3, seed: int = 0, epochs: int = 6) -> tuple[pa.Table, dict]:
    """Label maps for every row of a published image dataset version: (the ``label_maps`` table, manifest additions)."""
    from ..ingest import decode_images

    check_supports(version, "label_maps", "localized label maps")
    info = S.info_of(version.read(columns=[S.ID]))
    if info.modality != "image":
        raise InputError(f"{version.name} holds {info.modality} rows; label maps are for images", "run label maps on an image dataset")
    rows = version.read(columns=[S.ID, S.LABEL, info.inputs[0]])
    full = version.read()
    current = S.effective_labels(full)  # train the annotator on the best labels known
    images = decode_images(rows[info.inputs[0]], ids=rows[S.ID].to_pylist())
    maps = cross_val_label_maps(images, current, len(info.class_names), k=k, grid=grid, n_folds=n_folds, seed=seed, epochs=epochs)
    settings = LabelMapsSection(
        k=k,
        grid=grid,
        n_folds=n_folds,
        seed=seed,
        epochs=epochs,
        image_size=list(images.shape[1:3]),
        model="FCNLabeler",
        scores="logits relative to each cell's (k+1)-th class",
    )
    return label_maps_table(rows[S.ID], maps), {"label_maps": settings}


@step("publish")
def publish_step(store: str | None, parent: Version, changes: dict, table: pa.Table, run: dict | None = None) -> Version:
    """Publish ``parent``'s rows again with its label maps (``label_maps.parquet``) as the next version."""
    from .run import publish

    return publish(Store(store), parent, None, changes, run, tables={"label_maps": table})


def make_label_maps(name: str, store: str | None = None, version: int | str | None = None, **settings):
    """Compute label maps for ``name`` (latest or ``version``) and publish them as a new version (no Prefect)."""
    return label_maps_job(name, store, version, settings, InProcess())


def label_maps_job(name: str, store: str | None, version: int | str | None, settings: dict, runner: Runner):
    """Label maps, described once: ``runner`` decides where each step runs; returns the new version."""
    from .run import report_step

    parent = Store(store).version(name, version)
    table, changes = runner.run(label_maps_step, parent, **settings)
    new = runner.run(publish_step, store, parent, changes, table, runner.run_info())
    runner.run(report_step, new)
    return new
