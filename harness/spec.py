"""A candidate's spec: what is needed to build it in another process, and reading candidate TOML files."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class CandidateSpec:
    """Everything needed to build a candidate in another process."""

    name: str
    family: str | None  # None for entry-point candidates that build themselves
    description: str = ""
    tasks: list[str] = field(default_factory=list)
    recipe: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "builtin:<file>", "file:<path>" or "entry-point:<dist>"
    entry_point: str | None = None  # "module:attr" of an entry-point candidate (family None)
    # Where an exported candidate came from (`bench.py export` writes it): source candidate and
    # recipe, created_at, lalm_bench_version. Not read by families; kept in the run record.
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_toml(path: Path, error: type[Exception], what: str) -> dict[str, Any]:
    """A TOML file's table, or `error` naming the file: missing, or invalid with the parser's reason."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{path}: invalid TOML: {err}") from None
