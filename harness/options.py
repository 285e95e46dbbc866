"""Strict option tables: a TOML table checked against a dataclass.

A family declares its `[options]` as a dataclass with defaults (and checks in `__post_init__`);
`parse_options` turns the table into an instance, refusing unknown keys (naming the known ones
and the nearest match) and values of the wrong type, so a misspelt option is an error instead of
a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any


class OptionsError(ValueError):
    """An options table that does not fit its dataclass; the message says where and what to do."""


def nearest(name: str, known: list[str] | tuple[str, ...] | set[str]) -> str:
    """' (did you mean X?)' for the closest known name, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_keys_message(where: str, what: str, unknown: list[str], known: list[str]) -> str:
    parts = [f"{key!r}{nearest(key, known)}" for key in unknown]
    return f"{where}: unknown {what} {', '.join(parts)}; known: {', '.join(known) or 'none'}"


def parse_options(cls: type, raw: dict[str, Any], where: str) -> Any:
    """An instance of the dataclass `cls` from `raw`; OptionsError names `where` and the key."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise OptionsError(unknown_keys_message(where, "option(s)", unknown, sorted(fields)))
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        expected = hints.get(key, Any)
        if not _fits(value, expected):
            raise OptionsError(
                f"{where}: option {key!r} = {value!r} should be {_describe(expected)}, got {type(value).__name__}"
            )
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise OptionsError(f"{where}: {err}") from None


def _fits(value: Any, expected: Any) -> bool:
    """A shallow type check for the shapes TOML produces (str, int, float, bool, list, dict)."""
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected in (str, Path):
        return isinstance(value, str)
    if origin in (list, tuple) or expected in (list, tuple):
        args = typing.get_args(expected)
        return isinstance(value, (list, tuple)) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict or expected is dict:
        args = typing.get_args(expected)
        return isinstance(value, dict) and (not args or all(_fits(v, args[1]) for v in value.values()))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    return isinstance(value, expected) if isinstance(expected, type) else True


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(expected))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(expected))
    if expected is type(None):
        return "absent"
    if expected is Path:
        return "a path (string)"
    name = getattr(expected, "__name__", None) or str(expected)
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
            "list": "a list", "dict": "a table"}.get(name, name)
