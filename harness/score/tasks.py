"""The suites with per-sample questions: mcq (accuracy) and qa (an LLM judge's 1-10 score).

`annotate` runs in the parent once the measured child has ended (and again in `bench.py
rescore`): it writes onto each prediction line what scoring reads, mcq's `choice` and `correct`
and qa's judgement, so judging never touches a timing. `score` turns those into the suite's
metrics, where every planned sample counts: a failed, skipped or missing mcq sample is wrong, a
qa sample without a judgement counts as the lowest score, 1.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.score import bootstrap
from harness.score.judge import JudgeConfig, judge_all
from harness.score.mcq import answer_letter, read_choice
from records import files
from records.prediction import Prediction

SUITES = ("mcq", "qa")
LOWEST_SCORE = 1


def annotate(plans, predictions: list[Prediction], judge: JudgeConfig | None = None,
             rejudge: bool = False) -> tuple[list[Prediction], int]:
    """Adds `choice`/`correct` to mcq lines and a judgement to qa lines; returns the lines and the
    number of judge requests sent. A qa line that already holds a judgement keeps it (no request)
    unless `rejudge`; with no judge, qa lines are left as they are."""
    samples = {(p.suite.name, s.sample_id): s for p in plans if p.suite.name in SUITES for s in p.samples}
    to_judge: list[Prediction] = []
    for line in predictions:
        sample = samples.get(line.key)
        if sample is None or line.error is not None:
            continue
        if line.task == "mcq":
            choice = read_choice(line.prediction, sample.choices)
            line.extra["choice"] = choice
            line.extra["correct"] = choice == answer_letter(sample.answer, sample.choices)
        elif line.task == "qa" and judge is not None and (rejudge or "judge_score" not in line.extra):
            to_judge.append(line)
    items = [(samples[line.key].question, _reference(samples[line.key]), line.prediction or "") for line in to_judge]
    for line, judgement in zip(to_judge, judge_all(judge, items) if to_judge else [], strict=True):
        line.extra.update(judge_score=judgement.score, judge_reply=judgement.reply, judge=judge.identity())
        if judgement.error:
            line.extra["judge_error"] = judgement.error
        else:
            line.extra.pop("judge_error", None)
    return predictions, len(to_judge)


def annotate_run(run_dir: Path, plans, judge: JudgeConfig | None = None, rejudge: bool = False) -> int:
    """`annotate` on a run folder's predictions.jsonl, rewritten in place when the run has an mcq
    or qa suite; returns the number of judge requests sent."""
    if not any(p.suite.name in SUITES for p in plans):
        return 0
    path = Path(run_dir) / files.PREDICTIONS_FILE
    lines, sent = annotate(plans, files.repair_predictions(path), judge, rejudge)
    if path.is_file():
        files.write_predictions(path, lines)
    return sent


def _reference(sample) -> str:
    return " / ".join(sample.references) if sample.references else (sample.answer or "")


def score(plan, by_id: dict[str, Prediction]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """(metrics over every planned sample, metrics over the predicted ones, bootstrap intervals, notices)."""
    rows = [by_id.get(s.sample_id) for s in plan.samples]
    rows = [r if r is not None and r.error is None else None for r in rows]
    n_skipped = len(plan.skipped)
    if plan.suite.name == "mcq":
        return _score_mcq(plan.samples, rows, n_skipped)
    return _score_qa(rows, n_skipped)


def _score_mcq(samples, rows: list[Prediction | None], n_skipped: int):
    # The rule is applied here again (not read from the lines), so scoring never depends on annotate.
    choices = [None if r is None else read_choice(r.prediction, s.choices) for s, r in zip(samples, rows, strict=True)]
    correct = [c is not None and c == answer_letter(s.answer, s.choices) for s, c in zip(samples, choices, strict=True)]
    correct += [False] * n_skipped
    predicted = [c for c, r in zip(correct, rows, strict=False) if r is not None]
    n_unparsed = sum(1 for r, c in zip(rows, choices, strict=True) if r is not None and c is None)
    chances = [1 / len(s.choices) for s in samples if s.choices]
    metrics: dict[str, Any] = {
        "accuracy": _mean(correct),
        "n_correct": sum(correct),
        "n_unparsed": n_unparsed,
        "chance": _mean(chances),
    }
    by_category: dict[str, list[bool]] = defaultdict(list)
    for sample, ok in zip(samples, correct, strict=False):
        if sample.category:
            by_category[sample.category].append(ok)
    if by_category:
        metrics["accuracy_by_category"] = {k: {"accuracy": _mean(v), "n": len(v)} for k, v in sorted(by_category.items())}
    scored_only = {"accuracy": _mean(predicted), "n_correct": sum(predicted), "n_unparsed": n_unparsed}
    notices = []
    if n_unparsed:
        notices.append(f"{n_unparsed} repl{'y' if n_unparsed == 1 else 'ies'} named no choice by the rule "
                       "(docs/guides/tasks.md): counted as wrong")
    ci = bootstrap.mean_ci([float(c) for c in correct]) if len(correct) >= 2 else None
    return metrics, scored_only, ({"accuracy": ci} if ci else {}), notices


def _score_qa(rows: list[Prediction | None], n_skipped: int):
    predicted = [r for r in rows if r is not None]
    judged = [r for r in predicted if "judge_score" in r.extra]
    if not judged:
        reason = ("not judged: no judge was given (bench.py run --judge judge.toml; or judge this run's answers "
                  "with bench.py rescore RUN_ID --judge judge.toml)") if predicted else "no sample has a prediction to judge"
        metrics = {"judge_score": None, "n_judged": 0, "n_unjudged": len(rows) + n_skipped}
        return metrics, dict(metrics), {}, [reason]
    scores = [_score_of(r) for r in rows] + [LOWEST_SCORE] * n_skipped
    n_unjudged = sum(1 for r in rows if r is None or r.extra.get("judge_score") is None) + n_skipped
    metrics = {"judge_score": _mean(scores), "n_judged": len(scores) - n_unjudged, "n_unjudged": n_unjudged}
    scored_only = {"judge_score": _mean([_score_of(r) for r in predicted]),
                   "n_unjudged": sum(1 for r in predicted if r.extra.get("judge_score") is None)}
    identities = {tuple(sorted((r.extra.get("judge") or {}).items())) for r in judged}
    notices = []
    if n_unjudged:
        notices.append(f"{n_unjudged} sample(s) without a judge's score (no prediction, no reply from the judge, or "
                       f"no valid 'Score: N'): each counts as {LOWEST_SCORE}")
    if len(identities) > 1:
        notices.append("the samples were judged by different judges or templates: rejudge them all "
                       "(bench.py rescore --rejudge)")
    ci = bootstrap.mean_ci([float(s) for s in scores]) if len(scores) >= 2 else None
    return metrics, scored_only, ({"judge_score": ci} if ci else {}), notices


def judge_of(predictions: list[Prediction]) -> dict[str, str] | None:
    """The judge identity of a run's qa lines (the first judged line's), for the suite block."""
    for line in predictions:
        if line.task == "qa" and line.extra.get("judge"):
            return dict(line.extra["judge"])
    return None


def _score_of(row: Prediction | None) -> int:
    value = None if row is None else row.extra.get("judge_score")
    return value if isinstance(value, int) and not isinstance(value, bool) else LOWEST_SCORE


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None
