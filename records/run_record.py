"""The run record (run.json): what one run measured, read by the leaderboard and every report.

Written by `harness.run.record` (a run), `harness.serve.loadtest` (`kind = "load"`) and
`bench.py rescore` (new scores, `history`), always through `RunRecord.to_dict` and
`records.files.write_run_record`. Records written by earlier versions load here unchanged: a
missing field is null, an unknown one is kept in `extra` and written back as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from records.fields import split_known
from records.schema import SCHEMA_VERSION, SUPPORTED_SCHEMAS, RecordError

STATUSES = ("ok", "partial", "failed")
RUN_KIND = "run"
LOAD_KIND = "load"  # a load test (`bench.py load`): plotted by `bench.py report`, never ranked
# Keys a reader cannot do without; everything else may be absent or null.
REQUIRED_KEYS = ("run_id", "candidate", "status")
OBJECT_KEYS = ("suites", "efficiency", "environment")


@dataclass
class RunRecord:
    run_id: str
    candidate: str
    status: str  # ok | partial | failed
    schema_version: int = SCHEMA_VERSION
    kind: str = RUN_KIND
    candidate_spec: dict[str, Any] = field(default_factory=dict)
    trust: dict[str, bool] | None = None  # trust_remote_code / allow_pickle, said explicitly
    recipe_applied: Any = None
    candidate_info: Any = None  # the candidate's run_info() (e.g. a served model's probe)
    calibration_ids: list[str] | None = None
    protocol: str | None = "default"
    sweep_cell: str | None = None
    created_at: str | None = None
    error: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    suites: dict[str, Any] | None = None
    coverage: float | None = None  # the lowest suite coverage (harness/score/scoring.py)
    efficiency: dict[str, Any] | None = None
    load_s: float | None = None
    restarts_after_sample_timeout: int | None = None
    executor: dict[str, Any] | None = None  # which executor and node ran it (sweeps)
    load: dict[str, Any] | None = None  # kind "load": the levels of the load test
    history: list[dict[str, Any]] | None = None  # `bench.py rescore`: earlier metrics, newest last
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_load_test(self) -> bool:
        return self.kind == LOAD_KIND

    def suite(self, name: str) -> dict[str, Any]:
        """The block of suite `name`, or {} when the run has none."""
        block = (self.suites or {}).get(name)
        return block if isinstance(block, dict) else {}

    # A read-only view by JSON key, for code written against run.json's JSON form (scripts,
    # plugins, callers that pass plain dicts): `record["status"]`, `record.get("suites")`. The
    # harness and the leaderboard read attributes.
    def __getitem__(self, key: str) -> Any:
        if key in self.extra:
            return self.extra[key]
        if key in _FIELD_NAMES and (getattr(self, key) is not None or key not in _OMITTED_WHEN_NULL):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        # __getitem__'s rule without raising: the leaderboard reads records this way 100,000s of times.
        if key in self.extra:
            return self.extra[key]
        if key in _FIELD_NAMES:
            value = getattr(self, key)
            if value is not None or key not in _OMITTED_WHEN_NULL:
                return value
        return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        for key in _OMITTED_WHEN_NULL:
            if data[key] is None:
                del data[key]
        if self.kind == RUN_KIND:
            del data["kind"]
        return data | extra

    @classmethod
    def from_dict(cls, data: Any, where: object = "run record") -> RunRecord:
        """The typed record; RecordError names `where` (a file) and what makes the record unusable."""
        problem = problem_with(data)
        if problem:
            raise RecordError(f"{where}: {problem}", problem)
        data = dict(data)
        if "profile" in data and "protocol" not in data:  # records written before the rename
            data["protocol"] = data.pop("profile")
        if data.get("schema_version") is None:
            data["schema_version"] = SCHEMA_VERSION
        known, extra = split_known(cls, data)
        known.setdefault("protocol", None)
        known["kind"] = known.get("kind") or RUN_KIND
        return cls(**known, extra=extra)


_FIELD_NAMES = frozenset(f.name for f in fields(RunRecord)) - {"extra"}
# Fields of one kind of record only: left out of the others, as before they were typed.
_OMITTED_WHEN_NULL = ("executor", "load", "history", "restarts_after_sample_timeout", "trust")
_ABSENT = object()


def as_run_record(record: RunRecord | dict[str, Any], where: object = "run record") -> RunRecord:
    """`record` typed: a RunRecord as it is, a dict (run.json's JSON form) read with from_dict."""
    return record if isinstance(record, RunRecord) else RunRecord.from_dict(record, where)


def problem_with(record: Any) -> str | None:
    """What makes `record` unusable, or None if it is usable."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        return f"missing required key(s): {', '.join(missing)}"
    for key in REQUIRED_KEYS:
        if not isinstance(record[key], str) or not record[key]:
            return f"{key!r} must be a non-empty string, got {record[key]!r}"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r} (expected one of {', '.join(STATUSES)})"
    version = record.get("schema_version")
    if version is not None and version not in SUPPORTED_SCHEMAS:
        return (f"unsupported schema_version {version!r} (this version reads "
                f"{', '.join(map(str, SUPPORTED_SCHEMAS))}; upgrade lalm-bench to read it)")
    for key in OBJECT_KEYS:
        if record.get(key) is not None and not isinstance(record[key], dict):
            return f"{key!r} must be an object or null, got {type(record[key]).__name__}"
    return None
