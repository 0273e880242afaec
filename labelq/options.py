"""Settings declared once: a settings dataclass marks its user-facing fields with ``option(...)``,
and the command line builds its options from those marks (``labelq.cli.options_of``).

Each marked field has one flat option name (``dest``, by default the field's name), unique across the
sections of a job's config, so a config can also be written as flat keywords
(``AuditConfig.from_options(model="logreg", n_folds=3)``) and stored as a flat dict of the options that
differ from their defaults (a Prefect deployment's parameters).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, field, fields
from typing import Any


def option(*flags: str, help: str, dest: str | None = None, from_cli: Callable[[Any], Any] | None = None, default: Any = None, **click: Any) -> Any:
    """A dataclass field (default ``default``) that is also the command-line option ``flags``.

    ``from_cli`` turns the command line's value into the field's value (``csv`` and ``key_values``
    below); ``click`` holds further ``click.option`` arguments (``type``, ``is_flag``, ``nargs``...).
    """
    meta = {"cli": {"flags": flags, "help": help, "click": click}, "dest": dest, "from_cli": from_cli}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def option_fields(cls: type) -> Iterator[Field]:
    """The fields of ``cls`` that are options."""
    return (f for f in fields(cls) if "cli" in f.metadata)


def dest(f: Field) -> str:
    """A field's flat option name."""
    return f.metadata.get("dest") or f.name


def default_of(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def take(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of ``cls`` found (and removed) in the flat ``options``."""
    return {f.name: options.pop(dest(f)) for f in option_fields(cls) if dest(f) in options}


def changed(obj: Any) -> dict[str, Any]:
    """``obj``'s options that differ from their defaults, by flat name."""
    return {dest(f): getattr(obj, f.name) for f in option_fields(type(obj)) if getattr(obj, f.name) != default_of(f)}


def csv(value: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def key_values(values: tuple[str, ...]) -> dict[str, Any]:
    """``("epochs=3", "hidden=[64]")`` -> ``{"epochs": 3, "hidden": [64]}`` (JSON values, else strings)."""
    from .errors import InputError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise InputError(f"{item!r} is not KEY=VALUE", "write each --model-param as KEY=VALUE, e.g. --model-param epochs=3")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
