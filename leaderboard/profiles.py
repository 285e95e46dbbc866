"""Weight profiles: which criteria count, how much, how ties are ranked, how much noise is a tie.

A profile is a built-in name (``competition``, the default, or ``competition-exact``), a TOML
file, a string ``"wer=1,spider=1,memory=2,latency=2"`` or a mapping. A profile file reads::

    name = "my-profile"        # optional, defaults to the file name
    ties = "average"           # optional: "min" (default, 1, 1, 3) or "average" (1.5, 1.5, 3)
    min_coverage = 1.0         # optional: leave out runs that predicted fewer of their samples
    [weights]
    wer = 1
    spider = 1
    memory = 2
    latency = 2
    extra = 1                  # the primary metric of a further suite, when runs have one
    [tolerance]                # optional, relative: values this close to their group's best tie
    memory = 0.05
    latency = 0.05

Criteria left out of [weights] get weight 0: they are still shown in the table but not scored.
Criteria left out of [tolerance] are ranked exactly (tolerance 0). The names are those of the
weight profiles only: the measurement protocols (``run --protocol default|nota2025``) are a
different thing, and no weight profile shares a name with one.
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
DEFAULT_PROFILE = "competition"
EXACT_PROFILE = "competition-exact"  # what runs under the nota2025 measurement protocol get
# Weight profiles that were renamed, and why: the old name is refused with this message.
RENAMED = {
    "nota2025": (
        "'nota2025' names the measurement protocol (`run --protocol nota2025`), not a weight profile; "
        f"the competition's weights are now '{DEFAULT_PROFILE}' (memory and latency values within "
        f"the measured noise share a rank) and '{EXACT_PROFILE}' (exact ranks, as the organiser ranked)"
    ),
}
FILE_KEYS = ("name", "description", "ties", "min_coverage", "weights", "tolerance")
BUILTIN_DIR = Path(__file__).with_name("builtin_profiles")


@dataclass(frozen=True)
class WeightProfile:
    name: str
    weights: dict[str, float] = field(default_factory=dict)  # every key of CRITERION_KEYS
    ties: str = "min"
    source: str = "built-in"
    tolerance: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CRITERION_KEYS, 0.0))
    min_coverage: float | None = None  # runs with a lower coverage are left out (by `build`)

    def describe_tolerance(self) -> str | None:
        """E.g. "memory values within 5% and latency values within 5% of their group's best share a rank"."""
        parts = [f"{_LABEL.get(k, k)} values within {_percent(v)}" for k, v in self.tolerance.items() if v]
        if not parts:
            return None
        listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        return f"{listed} of their group's best share a rank"


_LABEL = {"wer": "WER", "spider": "SPIDEr", "memory_mb": "memory", "latency_ms": "latency", "extra": "extra"}


def _percent(value: float) -> str:
    return f"{value * 100:g}%"


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
    if text in RENAMED:
        raise ValueError(f"unknown weight profile {text!r}: {RENAMED[text]}")
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
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; expected name, description, ties, "
                         "min_coverage, [weights], [tolerance]")
    weights = data.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{path}: needs a [weights] table, e.g. wer = 1")
    ties = data.get("ties", "min")
    if ties not in TIES:
        raise ValueError(f"{path}: ties must be one of {', '.join(TIES)}, got {ties!r}")
    tolerance = data.get("tolerance", {})
    if not isinstance(tolerance, dict):
        raise ValueError(f"{path}: tolerance must be a table, e.g. [tolerance] memory = 0.02")
    try:
        parsed = _weights(list(weights.items()))
        tolerances = _tolerances(list(tolerance.items()))
        min_coverage = _min_coverage(data.get("min_coverage"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return WeightProfile(str(data.get("name") or path.stem), parsed, ties, source, tolerances, min_coverage)


def _criterion_key(name: Any) -> str:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in CRITERION_KEYS:
        known = sorted({*CRITERION_KEYS, *ALIASES})
        raise ValueError(f"unknown criterion {name!r}; known: {', '.join(known)}")
    return key


def _tolerances(pairs: list[tuple[str, Any]]) -> dict[str, float]:
    """Relative tolerances per criterion, each in [0, 1): 0.02 = values within 2% of the best tie."""
    tolerance = dict.fromkeys(CRITERION_KEYS, 0.0)
    for name, raw in pairs:
        key = _criterion_key(name)
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw < 1:
            raise ValueError(f"tolerance for {name!r} must be a number in [0, 1) (0.02 = 2%), got {raw!r}")
        tolerance[key] = float(raw)
    return tolerance


def _min_coverage(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
        raise ValueError(f"min_coverage must be a number in [0, 1] (1 = every planned sample predicted), got {raw!r}")
    return float(raw)


def _weights(pairs: list[tuple[str, Any]]) -> dict[str, float]:
    weights = dict.fromkeys(CRITERION_KEYS, 0.0)
    seen: set[str] = set()
    for name, raw in pairs:
        key = _criterion_key(name)
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
