"""Progress of long work: a bar on a person's terminal, plain log lines everywhere else.

``progress(total, what, unit)`` follows work of ``total`` units (rows, folds, examples). When bars are on
(``enable_bars``: the command line turns them on for a job that runs in this process with its progress
shown, and standard error is a terminal) it draws a tqdm bar with the count, the rate and the time left.
Otherwise, as in a Prefect flow (whose logs hold labelq's lines), a scheduled run or the Python API, work
that logs no lines of its own gets a plain line at most every ``LOG_EVERY`` seconds and one at the end:
``what: done/total unit (rate unit/s, about N s left)``.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

LOG_EVERY = 10.0  # seconds between two progress lines in a log

_bars = False


def enable_bars(on: bool = True) -> bool:
    """Draw bars from now on when standard error is a terminal; returns whether they are drawn."""
    global _bars
    _bars = bool(on and sys.stderr.isatty())
    return _bars


class Progress:
    """One piece of long work: ``update(n)`` as units finish; a context manager that closes the bar or logs the last line."""

    def __init__(self, total: int, what: str, unit: str = "rows", logger: logging.Logger | None = None) -> None:
        self.total, self.what, self.unit = int(total), what, unit
        self.log = logger  # None: the work logs its own lines, the bar is all this adds
        self.done, self.started, self.logged = 0, time.perf_counter(), time.perf_counter()
        self.bar = None
        if _bars:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=what, unit=f" {unit}", unit_scale=self.total >= 10_000, dynamic_ncols=True, leave=False, file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.log is not None and time.perf_counter() - self.logged >= LOG_EVERY and self.done < self.total:
            self._log_line()

    def _log_line(self) -> None:
        self.logged = time.perf_counter()
        elapsed = max(self.logged - self.started, 1e-9)
        rate = self.done / elapsed
        left = f", about {(self.total - self.done) / rate:.0f} s left" if 0 < self.done < self.total and rate > 0 else f", in {elapsed:.1f} s"
        self.log.info("%s: %s/%s %s (%.1f %s/s%s)", self.what, f"{self.done:,}", f"{self.total:,}", self.unit, rate, self.unit, left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.log is not None and self.done and self.total > 1 and time.perf_counter() - self.started >= LOG_EVERY:
            self._log_line()  # work short enough to finish between two lines logs nothing more than its own lines

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def progress(total: int, what: str, unit: str = "rows", logger: logging.Logger | None = None) -> Progress:
    """Follow work of ``total`` units named ``what`` (see the module's description); ``logger``: where the plain
    lines go when no bar is drawn (None: the work logs its own lines)."""
    return Progress(total, what, unit, logger)
