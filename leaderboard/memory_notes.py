"""A header line for runs whose ranked memory peak was reached while loading, not inferring.

Recipes that quantize while loading (bitsandbytes, int8-dynamic, embed-int8 on an fp32
checkpoint) hold the fp32 weights and their quantized copy at once, so their peak says more
about the loading path than about the model a deployment would run: that loads an exported,
already-quantized checkpoint (`bench.py export`). Reads records only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from records.run_record import RunRecord


def peaked_while_loading(run: RunRecord | Mapping[str, Any]) -> bool:
    """Also for fragments of a record (the keys it reads): by key, which a RunRecord answers too."""
    memory = (run.get("efficiency") or {}).get("memory") or {}
    return memory.get("peak_phase") == "load"


def memory_phase_notes(runs: list[RunRecord] | list[Mapping[str, Any]]) -> list[str]:
    names = sorted({str(r.get("candidate")) for r in runs if peaked_while_loading(r)})
    if not names:
        return []
    return [f"Memory peaked while loading, not inferring: {', '.join(names)} (quantized on load from fp32); "
            "an exported checkpoint (`bench.py export`) is what a deployment would load"]
