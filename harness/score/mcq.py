"""Which choice a multiple-choice reply picked (suite mcq): one rule, in this order.

1. The reply holds the full text of exactly one choice (case, punctuation and whitespace folded,
   matched as whole words): that choice. Where one matched choice's text holds another's ("dog"
   and "small dog"), the longer one wins.
2. Else a choice letter: standalone in capitals ("B", "B."), in parentheses ("(b)"), or after
   "answer:" / "answer is". A capital `A` or `I` followed by a lower-case word is the article or
   the pronoun ("A dog barks"), not a letter. Only the letters of the listed choices count. If two
   different letters appear, the reply is unparsed.
3. Else unparsed (None): counted as wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.data.questions import LETTERS, normalize

_PARENS = re.compile(r"\(\s*([A-Za-z])\s*\)")
_AFTER_ANSWER = re.compile(r"answer\s*(?:is\s*:?|:)\s*\(?\s*([A-Za-z])(?![\w])", re.IGNORECASE)
_CAPITAL = re.compile(r"(?<![\w(])([A-Z])(?![\w)])")
_WORD_NEXT = re.compile(r"\s+[a-z]")  # after "A"/"I": a lower-case word makes it the article / pronoun


def by_text(reply: str, choices: Sequence[str]) -> int | None:
    """Rule 1: the index of the one choice whose full text the reply holds, else None."""
    text = f" {normalize(reply)} "
    keys = [normalize(c) for c in choices]
    found = [i for i, key in enumerate(keys) if key and f" {key} " in text]
    # A matched choice inside a longer matched one ("dog" in "small dog") is not a match of its own.
    found = [i for i in found if not any(j != i and f" {keys[i]} " in f" {keys[j]} " for j in found)]
    return found[0] if len(found) == 1 else None


def letters_in(reply: str, n_choices: int) -> set[str]:
    """Rule 2: the choice letters the reply names."""
    valid = set(LETTERS[:n_choices])
    found = {m.group(1).upper() for m in _PARENS.finditer(reply)}
    found |= {m.group(1).upper() for m in _AFTER_ANSWER.finditer(reply) if not _article(reply, m)}
    found |= {m.group(1) for m in _CAPITAL.finditer(reply) if not _article(reply, m)}
    return found & valid


def _article(reply: str, match: re.Match) -> bool:
    return match.group(1) in "AaIi" and _WORD_NEXT.match(reply, match.end(1)) is not None


def read_choice(reply: str | None, choices: Sequence[str]) -> str | None:
    """The letter of the choice the reply picked, or None (unparsed)."""
    if not reply or not reply.strip():
        return None
    index = by_text(reply, choices)
    if index is not None:
        return LETTERS[index]
    letters = letters_in(reply, len(choices))
    return letters.pop() if len(letters) == 1 else None


def answer_letter(answer: str, choices: Sequence[str]) -> str:
    """The letter of the right choice (`answer` is one of `choices`, as the loaders check)."""
    return LETTERS[list(choices).index(answer)]
