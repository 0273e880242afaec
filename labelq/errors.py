"""Errors raised by labelq.

Every error says what was wrong and how to fix it. ``retryable`` tells a caller (or a Prefect
task's retry policy) whether running the same thing again can help.
"""

from __future__ import annotations


class LabelqError(Exception):
    """Base class of every error labelq raises on purpose."""

    retryable: bool = False

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\nFix: {fix}")


class InputError(LabelqError, ValueError):
    """The data, predictions or options given to labelq are not usable as they are."""


class SourceNotFoundError(InputError, FileNotFoundError):
    """A source path or a built-in dataset's files do not exist."""


class MissingDependencyError(LabelqError, ImportError):
    """A package needed for this source or model is not installed."""


class SchedulerError(LabelqError):
    """No Prefect server to register a schedule with, or it refused the request."""


class StoreError(LabelqError):
    """The dataset store refused an operation (overwrite, unknown version, corrupt manifest)."""


class DamagedVersionError(StoreError):
    """A published version's files do not match its manifest (truncated, edited, missing or extra files)."""

    def __init__(self, problem: str, fix: str | None = None, damaged: list[str] | None = None) -> None:
        super().__init__(problem, fix)
        self.damaged = damaged or []


class VersionConflictError(StoreError):
    """Another writer published the same version first; publishing again picks the next number."""

    retryable = True


class NotLatestError(VersionConflictError):
    """A change made on a version that is no longer the latest: it must be redone on the latest, not retried."""

    retryable = False
