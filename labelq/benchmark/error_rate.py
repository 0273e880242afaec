"""An honest estimate of a dataset's label-error rate: detector flags plus people's checks of a random sample.

Checking only the flagged rows gives a lower bound (the errors the detector missed are never counted).
Following design-based supervised learning (Egami et al. 2023) and prediction-powered inference, the
detector's output is a *surrogate* ``s_i`` in [0, 1] on every row, and a random sample of rows, drawn by
a known design, is verified by people (``e_i`` = 1 for a label error). Rows are split into strata
(for example "flagged" and "not flagged"); in stratum h, ``n_h`` of its ``N_h`` rows are drawn at random
without replacement (``n_h = N_h``: every row checked). Then

    estimate = (1/N) * sum_h [ sum_{i in h} s_i + N_h * mean_{sampled i in h} (e_i - s_i) ]
    variance = (1/N^2) * sum_h N_h^2 * (1 - n_h / N_h) * var_{sampled in h}(e_i - s_i) / n_h

unbiased whatever the quality of the surrogate: a good surrogate only makes the interval narrower.
A stratum with no verified row cannot be corrected: its surrogate is taken as is, the result says
so (``design_based = False``) and has no interval (``lo``, ``hi`` are NaN). ``rows_needed`` says how many random checks reach a target interval width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError

Z95 = 1.959963984540054


@dataclass
class ErrorRateEstimate:
    estimate: float
    lo: float
    hi: float
    lower_bound_checked_only: float  # confirmed errors among verified rows / N: the usual figure
    surrogate_only: float  # mean surrogate: the detector's own estimate
    n_rows: int
    n_verified: int
    design_based: bool  # False when a stratum had no verified row (its surrogate was taken as is)
    strata: list[dict]

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_error_rate(surrogate: np.ndarray, verified: dict[int, bool] | np.ndarray, strata: np.ndarray | None = None) -> ErrorRateEstimate:
    """``surrogate`` ``(N,)`` in [0, 1]; ``verified``: row -> is a label error (or an ``(N,)`` array with NaN
    for unverified rows); ``strata`` ``(N,)`` labels (default: one stratum). Verified rows must be a simple
    random sample of their stratum (or all of it)."""
    s = np.asarray(surrogate, dtype=np.float64)
    n = len(s)
    if n == 0:
        raise InputError("no rows to estimate an error rate on")
    if np.isnan(s).any() or (s < 0).any() or (s > 1).any():
        raise InputError("the surrogate must be in [0, 1] on every row", "pass 0/1 flags or probabilities of a label error")
    e = np.full(n, np.nan)
    if isinstance(verified, dict):
        for i, v in verified.items():
            if not 0 <= int(i) < n:
                raise InputError(f"verified row {i} is outside 0..{n - 1}")
            e[int(i)] = float(bool(v))
    else:
        e = np.asarray(verified, dtype=np.float64)
        if e.shape != (n,):
            raise InputError(f"verified has shape {e.shape}, expected ({n},)")
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    total, var, design_based, parts = 0.0, 0.0, True, []
    for h in np.unique(strata):
        rows = strata == h
        big_n = int(rows.sum())
        checked = rows & ~np.isnan(e)
        small_n = int(checked.sum())
        part = float(s[rows].sum())
        info = {"stratum": h.item() if hasattr(h, "item") else h, "rows": big_n, "verified": small_n, "errors_found": int(np.nansum(e[checked]))}
        if small_n == 0:
            design_based = False
        else:
            d = e[checked] - s[checked]
            part += big_n * float(d.mean())
            if small_n > 1 and small_n < big_n:
                var += big_n**2 * (1 - small_n / big_n) * float(d.var(ddof=1)) / small_n
            info["mean_residual"] = float(d.mean())
        info["estimated_errors"] = part
        parts.append(info)
        total += part
    est = total / n
    half = Z95 * np.sqrt(var) / n
    found = float(np.nansum(e))
    lo, hi = (max(0.0, est - half), min(1.0, est + half)) if design_based else (float("nan"), float("nan"))  # no honest interval
    return ErrorRateEstimate(est, lo, hi, found / n, float(s.mean()), n, int((~np.isnan(e)).sum()), design_based, parts)


def rows_needed(width: float, residual_sd: float, stratum_rows: int, total_rows: int) -> int:
    """Random checks in a stratum of ``stratum_rows`` rows for a 95% interval of total ``width`` on the
    overall rate, given the residual (error - surrogate) standard deviation there; finite population corrected."""
    if width <= 0:
        raise InputError(f"interval width must be positive, got {width}")
    if residual_sd == 0:
        return 1
    # width = 2 z (N_h / N) sd sqrt((1 - n/N_h) / n)  ->  solve for n
    k = (width / (2 * Z95 * residual_sd * stratum_rows / total_rows)) ** 2
    n = 1.0 / (k + 1.0 / stratum_rows)
    return int(min(stratum_rows, np.ceil(n)))
