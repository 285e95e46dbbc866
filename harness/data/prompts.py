"""Which prompt each suite's requests carry (`run --prompts suite|model`).

`suite` (the default, and what the leaderboard compares) gives every candidate the suite's own
prompt, the competition's. `model` asks the candidate for the prompt its authors publish for the
task (`Candidate.model_prompt`) and falls back to the suite's prompt where it has none; the run
record says per suite which text was used and where it came from.
"""

from __future__ import annotations

from typing import Any

from harness.candidate import Candidate
from harness.suites import PROMPT_MODES

MODES = PROMPT_MODES
PROMPTS_FILE = "prompts.json"  # written by the worker once the prompts are known


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown --prompts mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


def resolve(candidate: Candidate, suites: list[dict[str, Any]], mode: str) -> dict[str, dict[str, Any]]:
    """{suite name: {"text": ..., "source": "suite" | "model"}} for the suites of a job."""
    out: dict[str, dict[str, Any]] = {}
    for suite in suites:
        text = candidate.model_prompt(suite["name"]) if mode == "model" else None
        if text is not None:
            out[suite["name"]] = {"text": text, "source": "model"}
            continue
        out[suite["name"]] = {"text": suite["prompt"], "source": "suite"}
        if mode == "model":
            out[suite["name"]]["note"] = "the candidate publishes no prompt for this task: the suite's prompt was used"
    return out


def unresolved(suite_prompt: str, mode: str) -> dict[str, Any]:
    """The record's entry when the measured process stopped before it resolved the prompts."""
    if mode == "suite":
        return {"text": suite_prompt, "source": "suite"}
    return {"text": None, "source": None, "note": "the measured process stopped before the prompts were resolved"}
