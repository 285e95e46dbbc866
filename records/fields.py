"""Shared helpers of the record dataclasses: known fields in, unknown keys kept aside."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cache
from typing import Any


@cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init and f.name != "extra")


def split_known(cls: type, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the keys `cls` declares, every other key). The other keys come from a newer writer or a
    plugin; records keep them in `extra` and write them back unchanged, so nothing is lost."""
    names = _names(cls)
    known = {k: v for k, v in data.items() if k in names}
    return known, {k: v for k, v in data.items() if k not in names}


def without_none(data: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """`data` without the null values of optional keys; the keys in `keep` are always written."""
    return {k: v for k, v in data.items() if v is not None or k in keep}


def is_mapping(value: Any) -> bool:
    """isinstance(value, Mapping), answered first by the exact type: JSON gives plain dicts, and an
    abc check costs much more, which a reader of 10,000 records pays 100,000s of times."""
    return type(value) is dict or isinstance(value, Mapping)
