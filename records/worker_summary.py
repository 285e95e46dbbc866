"""worker.json: what the measured child reports about itself (load time, memory, device, what
the candidate says of its recipe), written once at its end (or when loading fails)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from records.fields import split_known, without_none


@dataclass
class WorkerSummary:
    status: str = "running"  # running | ok | failed
    device: str | None = None
    error: str | None = None
    load_s: float | None = None
    bandwidth_gbps: float | None = None  # candidates with decoder weight bytes: the roofline's memory bandwidth
    calibration_ids: list[str] | None = None
    audio_window_s: float | None = None
    nota2025: dict[str, Any] | None = None
    quality_pass: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    weights_bytes: int | None = None
    weights_bytes_by_part: dict[str, int] | None = None
    decoder_weights_bytes: int | None = None
    recipe_applied: Any = None
    candidate_info: Any = None
    external_memory: dict[str, Any] | None = None
    device_name: str | None = None
    gpu: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return without_none(data, ("status",)) | extra

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerSummary:
        known, extra = split_known(cls, data)
        return cls(**known, extra=extra)
