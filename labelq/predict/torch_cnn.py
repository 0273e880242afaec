"""A small convolutional network in torch with the scikit-learn classifier API.

``CNNClassifier().fit(X, y).predict_proba(X)`` with ``X`` uint8 ``(N, H, W, C)`` images (or float in
[0, 1]). It works for any image size from 8x8 up (adaptive pooling), runs on a GPU when one is
present (``device='auto'``), and logs progress per epoch.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import numpy as np

from ..io import HeapGuard
from ..progress import progress

log = logging.getLogger(__name__)


def _build(in_channels: int, n_classes: int, width: int, dropout: float):
    import torch.nn as nn

    def block(cin: int, cout: int, pool: bool) -> list:
        layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return layers + ([nn.MaxPool2d(2)] if pool else [])

    return nn.Sequential(
        *block(in_channels, width, True),
        *block(width, 2 * width, True),
        *block(2 * width, 4 * width, False),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(16 * width, n_classes),
    )


def _margins(logits, target):
    """Each row's margin: its assigned class's logit minus the largest other logit (negative: the network prefers another class)."""
    import torch

    assigned = logits.gather(1, target[:, None])[:, 0]
    others = logits.scatter(1, target[:, None], float("-inf"))
    return assigned - others.max(dim=1).values if logits.shape[1] > 1 else torch.zeros_like(assigned)


class CNNClassifier:
    """Small CNN: three conv-BN-ReLU blocks (width, 2w, 4w channels), 2x2 adaptive pooling, linear head.

    Parameters are stored unchanged by ``__init__`` (scikit-learn contract); fitted attributes end in ``_``.
    ``train_margins_`` (after ``fit``): each training row's area under the margin (AUM; Pleiss et al., NeurIPS
    2020), its assigned class's logit minus the largest other logit in its training forward pass, averaged
    over the epochs. Rows the network fits only late, or never (mislabelled rows, mostly), have low AUM.
    ``device``: ``'auto'`` (CUDA if available), ``'cpu'`` or ``'cuda'``.

    The scikit-learn estimator API (``get_params``/``set_params``: ``sklearn.base.clone`` works) without
    inheriting from scikit-learn: importing ``sklearn.base`` costs an image audit 83 MB it has no other use for.
    """

    _estimator_type = "classifier"

    def __init__(
        self,
        epochs: int = 6,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        width: int = 16,
        dropout: float = 0.2,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.dropout = dropout
        self.seed = seed
        self.device = device

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters by name."""
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters if name != "self"}

    def set_params(self, **params: Any) -> CNNClassifier:
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameters {unknown}; its parameters are {sorted(self.get_params())}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _network(self, in_channels: int, n_classes: int):
        return _build(in_channels, n_classes, self.width, self.dropout)

    @staticmethod
    def _to_tensor(X: np.ndarray):
        """``(N, C, H, W)``: uint8 images stay uint8 (a quarter of float32: 44 MB, not 176, for 56k
        Fashion-MNIST images) and become floats a batch at a time (``_floats``)."""
        import torch

        X = np.asarray(X)
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim != 4:
            raise ValueError(f"CNNClassifier expects images of shape (N, H, W[, C]), got {X.shape}")
        t = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
        return t if X.dtype == np.uint8 else t.float()

    @staticmethod
    def _floats(x):
        """A batch of ``_to_tensor``'s output as floats in [0, 1] for uint8 images."""
        return x if x.is_floating_point() else x.float().div_(255.0)

    def _moments(self, x) -> tuple[float, float]:
        """Mean and (unbiased) standard deviation of every value of ``_floats(x)``, from float64 sums over
        chunks (no float copy of the whole set)."""
        total = squares = 0.0
        for s in range(0, len(x), 1024):
            chunk = self._floats(x[s : s + 1024]).double()
            total, squares = total + float(chunk.sum()), squares + float((chunk * chunk).sum())
        count = max(x.numel(), 1)
        mean = total / count
        var = max(squares - count * mean * mean, 0.0) / max(count - 1, 1)
        return mean, var**0.5

    def fit(self, X: np.ndarray, y: np.ndarray) -> CNNClassifier:
        import torch
        import torch.nn.functional as F

        y = np.asarray(y)
        self.classes_ = np.unique(y)
        y_idx = torch.from_numpy(np.searchsorted(self.classes_, y).astype(np.int64))
        x = self._to_tensor(X)
        self.mean_, std = self._moments(x)
        self.std_ = std or 1.0
        gen = torch.Generator().manual_seed(int(self.seed))
        torch.manual_seed(int(self.seed))
        dev = self._device()
        model = self._network(x.shape[1], len(self.classes_)).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(x)
        steps = self.epochs * max(1, -(-n // self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=0.25)
        guard = HeapGuard()
        margins = torch.zeros(n, dtype=torch.float64)  # each row's margin summed over the epochs (AUM, below)
        with progress(self.epochs * n, f"cnn, {self.epochs} epochs", unit="images") as bar:  # each epoch logs its own line
            for epoch in range(self.epochs):
                model.train()
                t0, total, seen = time.perf_counter(), 0.0, 0
                perm = torch.randperm(n, generator=gen)
                for start in range(0, n, self.batch_size):
                    idx = perm[start : start + self.batch_size]
                    xb = (self._floats(x[idx]) - self.mean_) / self.std_
                    xb, yb = xb.to(dev, non_blocking=True), y_idx[idx].to(dev, non_blocking=True)
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                    margins[idx] += _margins(logits.detach(), yb).double().cpu()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += float(loss.detach()) * len(idx)
                    seen += len(idx)
                    bar.update(len(idx))
                    guard.check()
                log.info("cnn epoch %d/%d: loss %.4f, %d images in %.1fs", epoch + 1, self.epochs, total / max(seen, 1), seen, time.perf_counter() - t0)
        self.model_ = model.eval()
        self.train_margins_ = (margins / max(self.epochs, 1)).numpy().astype(np.float32)
        return self

    def _infer(self, X: np.ndarray, head, batch: int = 256) -> list[np.ndarray]:
        """``head(model, normalized batch)`` on ``X`` in batches, on the model's device; numpy results."""
        import torch

        x = self._to_tensor(X)
        dev = next(self.model_.parameters()).device
        out, guard = [], HeapGuard()
        with torch.inference_mode():
            for s in range(0, len(x), batch):
                out.append(head(self.model_, ((self._floats(x[s : s + batch]) - self.mean_) / self.std_).to(dev)).float().cpu().numpy())
                guard.check()
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        out = self._infer(X, lambda model, xb: torch.softmax(model(xb).float(), dim=1))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
