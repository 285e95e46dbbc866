"""Per-sample questions: the prompt a sample with its own question gets (suites mcq, qa).

A suite's prompt (or, with `run --prompts model`, the candidate's own) is a template. `{question}`
receives the sample's question and `{choices}` its choices, one per line as "(A) text", in the
file's order. Nothing else in the template is touched, so a model prompt that holds other braces
is safe. A template without `{question}` still asks it: the question (and the choices) go before
the template's text. Samples without a question get the template unchanged.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase
MAX_CHOICES = len(LETTERS)
_PLACEHOLDER = re.compile(r"\{(question|choices)\}")


def letter(index: int) -> str:
    return LETTERS[index]


def format_choices(choices: Sequence[str]) -> str:
    """"(A) a dog\\n(B) a cat": the choices in the file's order, each with its letter."""
    return "\n".join(f"({letter(i)}) {text}" for i, text in enumerate(choices))


def render(template: str, question: str | None, choices: Sequence[str] | None = None) -> str:
    """The exact prompt of one sample (see the module docstring)."""
    if question is None:
        return template
    listed = format_choices(choices) if choices else ""
    if "{question}" not in template:
        head = f"{question}\n{listed}" if listed else question
        return f"{head}\n{template}" if template.strip() else head
    values = {"question": question, "choices": listed}
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)  # one pass: a question's own braces stay
    if listed and "{choices}" not in template:  # the template takes the question only: the choices follow
        text = f"{text}\n{listed}"
    return text


_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    """Case, punctuation and whitespace folded: "The Dog!" and "the  dog" are the same choice."""
    return " ".join(_PUNCT.sub(" ", text.casefold()).split())


# What each suite with per-sample questions needs in an entry.
REQUIRED = {"mcq": ("question", "choices", "answer"), "qa": ("question",)}


def check_question(entry: dict, suite: str | None) -> tuple[dict, list[str]]:
    """The question fields of one data entry, checked: ({question, choices, answer, category}, [])
    or ({}, [what is wrong, ...]). `answer` is returned as the exact text of the right choice (an
    entry may name it by its text in any case or punctuation, or by its letter)."""
    problems = []
    question, choices, answer, category = (entry.get(k) for k in ("question", "choices", "answer", "category"))
    missing = [k for k in REQUIRED.get(suite or "", ()) if entry.get(k) in (None, "", [])]
    if missing:
        problems.append(f"suite {suite} needs field(s) {', '.join(missing)}")
    if question is not None and (not isinstance(question, str) or not question.strip()):
        problems.append("question must be a non-empty string")
    if category is not None and not isinstance(category, str):
        problems.append("category must be a string")
    if answer is not None and not isinstance(answer, str):
        problems.append("answer must be a string")
    if choices is not None:
        if not (isinstance(choices, list) and all(isinstance(c, str) and c.strip() for c in choices)):
            problems.append("choices must be a list of non-empty strings")
        elif not 2 <= len(choices) <= MAX_CHOICES:
            problems.append(f"choices must hold 2 to {MAX_CHOICES} options, not {len(choices)}")
        elif len({normalize(c) for c in choices}) < len(choices):
            problems.append(f"two choices are the same text once case and punctuation are folded: {choices}")
    if problems:
        return {}, problems
    if choices is not None and answer is not None:
        matched = _answer_choice(answer, choices)
        if matched is None:
            return {}, [f"answer {answer!r} is none of the choices {choices} (give its text or its letter)"]
        answer = matched
    if choices is not None and suite == "qa":
        return {}, ["suite qa asks open questions: an entry with choices belongs to suite mcq"]
    return {"question": question, "choices": choices, "answer": answer, "category": category}, []


def _answer_choice(answer: str, choices: list[str]) -> str | None:
    key = normalize(answer)
    for choice in choices:
        if normalize(choice) == key:
            return choice
    bare = answer.strip().strip("()").strip()
    if len(bare) == 1 and bare.upper() in LETTERS[: len(choices)]:
        return choices[LETTERS.index(bare.upper())]
    return None
