"""The leaderboard's header names runs whose ranked memory peak was set while loading."""

from __future__ import annotations

from harness.measure.memory import peak_phase
from leaderboard.memory_notes import memory_phase_notes


def _run(name: str, load_mb: float, inference_mb: float) -> dict:
    return {"candidate": name, "efficiency": {"memory": {"peak_phase": peak_phase(load_mb, inference_mb)}}}


def test_only_runs_that_peaked_while_loading_are_named():
    runs = [_run("int8dyn", 229.0, 120.0), _run("fp32", 8.4, 209.8), _run("tie", 50.0, 50.0), {"candidate": "old"}]
    notes = memory_phase_notes(runs)
    assert len(notes) == 1
    assert notes[0].startswith("Memory peaked while loading, not inferring: int8dyn (")
    assert "bench.py export" in notes[0]
    assert memory_phase_notes(runs[1:]) == []
