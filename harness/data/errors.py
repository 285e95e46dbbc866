"""What can be wrong with evaluation data: a whole file (DataError), one sample (Problem), one clip's audio (AudioError)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class DataError(Exception):
    """A data file is unusable; `problems` lists every issue found, each naming its sample."""

    def __init__(self, path: Path, problems: list):
        self.path = path
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


class AudioError(Exception):
    """One sample's audio cannot be used; the message is the one-line reason."""


@dataclass
class Problem:
    """One invalid sample: where it is, why, and the suite it would have belonged to."""

    where: str
    reason: str
    sample_id: str | None = None
    suite: str | None = None
    # Its references where the file gives them: a skipped sample is scored as an empty prediction.
    references: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"
