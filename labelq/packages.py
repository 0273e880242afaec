"""Installed package versions: what a cache key records, so that an upgrade recomputes what it cached."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def code_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None where not installed)."""
    out: dict[str, str | None] = {}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out
