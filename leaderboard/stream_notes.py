"""A header line for runs whose TPOT is unavailable because their served answers arrived buffered.

A server (or proxy) that buffers its stream delivers all chunks of an answer at once: the gaps
between them measure the client's parsing, not the model's time per token. The harness then
records TPOT as unavailable with the reason (`efficiency.tpot_unavailable_reason`), and latency
is the median TTFT, which covers the whole decode. Reads records only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from records.run_record import RunRecord


def tpot_unavailable_reason(run: RunRecord | Mapping[str, Any]) -> str | None:
    return (run.get("efficiency") or {}).get("tpot_unavailable_reason")


def buffered_stream_notes(runs: list[RunRecord] | list[Mapping[str, Any]]) -> list[str]:
    names = sorted({str(r.get("candidate")) for r in runs if tpot_unavailable_reason(r)})
    if not names:
        return []
    return [f"TPOT unavailable (buffered stream): {', '.join(names)}; their answers' chunks arrived together, so "
            "their latency is the median TTFT, which covers the whole decode (efficiency.tpot_unavailable_reason)"]
