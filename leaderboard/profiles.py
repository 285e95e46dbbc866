"""Weight profiles: which criteria count, how much, and how ties are ranked.

A profile is a built-in name (``nota2025``, the default), a TOML file, a string
``"wer=1,spider=1,memory=2,latency=2"`` or a mapping. A profile file reads::

    name = "my-profile"        # optional, defaults to the file name
    ties = "average"           # optional: "min" (default, 1, 1, 3) or "average" (1.5, 1.5, 3)
    [weights]
    wer = 1
    spider = 1
    memory = 2
    latency = 2
    extra = 1                  # the primary metric of a further suite, when runs have one

Criteria left out get weight 0: they are still shown in the table but not scored.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CRITERION_KEYS = ("wer", "spider", "memory_mb", "latency_ms", "extra")
ALIASES = {"memory": "memory_mb", "latency": "latency_ms"}
TIES = ("min", "average")
DEFAULT_PROFILE = "nota2025"
BUILTIN_DIR = Path(__file__).with_name("builtin_profiles")


@dataclass(frozen=True)
class WeightProfile:
    name: str
    weights: dict[str, float] = field(default_factory=dict)  # every key of CRITERION_KEYS
    ties: str = "min"
    source: str = "built-in"


def builtin_profiles() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BUILTIN_DIR.glob("*.toml"))}


def load_profile(spec: str | Path | Mapping[str, Any] | WeightProfile | None = None) -> WeightProfile:
    """Resolve any accepted profile form into a WeightProfile; ValueError says what is wrong."""
    if isinstance(spec, WeightProfile):
        return spec
    if spec is None:
        spec = DEFAULT_PROFILE
    if isinstance(spec, Mapping):
        return WeightProfile("custom", _weights(list(spec.items())), "min", "mapping")
    text = str(spec).strip()
    builtins = builtin_profiles()
    if text in builtins:
        return _from_file(builtins[text], source="built-in")
    if text.lower().endswith(".toml") or (text and "=" not in text and Path(text).is_file()):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"weight profile file not found: {path}")
        return _from_file(path, source=str(path))
    if "=" not in text:
        raise ValueError(
            f"unknown weight profile {text!r}; use one of {', '.join(sorted(builtins))}, a .toml "
            "file or a string like 'wer=1,spider=1,memory=2,latency=2'"
        )
    pairs: list[tuple[str, Any]] = []
    for part in text.split(","):
        name, sep, number = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"bad weight {part.strip()!r}: expected NAME=NUMBER")
        pairs.append((name.strip(), number.strip()))
    return WeightProfile("custom", _weights(pairs), "min", "command line")


def _from_file(path: Path, source: str) -> WeightProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read weight profile {path}: {err}") from None
    unknown = sorted(set(data) - {"name", "description", "ties", "weights"})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; expected name, description, ties, [weights]")
    weights = data.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{path}: needs a [weights] table, e.g. wer = 1")
    ties = data.get("ties", "min")
    if ties not in TIES:
        raise ValueError(f"{path}: ties must be one of {', '.join(TIES)}, got {ties!r}")
    try:
        parsed = _weights(list(weights.items()))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return WeightProfile(str(data.get("name") or path.stem), parsed, ties, source)


def _weights(pairs: list[tuple[str, Any]]) -> dict[str, float]:
    weights = dict.fromkeys(CRITERION_KEYS, 0.0)
    seen: set[str] = set()
    for name, raw in pairs:
        key = ALIASES.get(str(name).lower(), str(name).lower())
        if key not in CRITERION_KEYS:
            known = sorted({*CRITERION_KEYS, *ALIASES})
            raise ValueError(f"unknown criterion {name!r}; known: {', '.join(known)}")
        if key in seen:
            raise ValueError(f"criterion {key!r} is given more than once")
        seen.add(key)
        if isinstance(raw, bool):
            raise ValueError(f"weight for {name!r} is not a number: {raw!r}")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"weight for {name!r} is not a number: {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight for {name!r} must be a finite number >= 0, got {raw!r}")
        weights[key] = value
    if not any(weights.values()):
        raise ValueError("at least one weight must be greater than 0")
    return weights
