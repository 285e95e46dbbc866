"""The LLM judge of suite qa: any OpenAI-compatible endpoint (vLLM, a hosted API), set in a TOML file.

```toml
base_url = "http://127.0.0.1:8001/v1"
model = "judge"
api_key_env = "JUDGE_KEY"   # optional: the environment variable holding the key
prompt_template = "..."     # optional; receives {question}, {reference}, {answer}
timeout_s = 60              # optional: per request
max_retries = 2             # optional: per request, after the first try
concurrency = 4             # optional: requests in flight at once
max_tokens = 256            # optional: the judge's reply length
```

The judge replies with `Score: N`, N from 1 to 10 (the last such line counts); a reply without a
valid N, or no reply at all, leaves the sample unjudged (it then counts as 1, see
harness/score/tasks.py). The record keeps the judge's model, its base URL (never the key) and the
sha256 of the template, so runs judged differently are never ranked together.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import tomllib

# Published in docs/guides/tasks.md. Like AIR-Bench's chat judge: a reference answer stands in
# for the audio the judge cannot hear, and the answer is rated 1-10 on helpfulness, relevance,
# accuracy and detail.
DEFAULT_TEMPLATE = """\
You are a strict grader of answers to questions about an audio clip. You cannot hear the clip; \
the reference answer describes what is correct.

[Question]
{question}

[Reference answer]
{reference}

[Answer to grade]
{answer}

Rate the answer against the reference for helpfulness, relevance, accuracy and level of detail, \
on a scale of 1 (wrong or no answer) to 10 (fully correct and complete). Give one sentence of \
reasoning, then end with a line of exactly this form:
Score: N"""

KEYS = ("base_url", "model", "api_key_env", "prompt_template", "timeout_s", "max_retries", "concurrency", "max_tokens")
LIMITS = {"timeout_s": (1, 600), "max_retries": (0, 10), "concurrency": (1, 64), "max_tokens": (8, 4096)}
SCORE = re.compile(r"score\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_SLOT = re.compile(r"\{(question|reference|answer)\}")


class JudgeError(ValueError):
    """A judge file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key_env: str | None = None
    prompt_template: str = DEFAULT_TEMPLATE
    timeout_s: float = 60.0
    max_retries: int = 2
    concurrency: int = 4
    max_tokens: int = 256
    source: str = ""

    @property
    def template_sha256(self) -> str:
        return hashlib.sha256(self.prompt_template.encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, str]:
        """What the record keeps: who judged, with which template (never the key, not even one
        written into the URL)."""
        return {"model": self.model, "base_url": _without_secrets(self.base_url), "template_sha256": self.template_sha256,
                "template": "default" if self.prompt_template == DEFAULT_TEMPLATE else "custom"}

    def prompt(self, question: str, reference: str, answer: str) -> str:
        values = {"question": question, "reference": reference, "answer": answer}
        return _SLOT.sub(lambda m: values[m.group(1)], self.prompt_template)  # one pass: answers' braces stay


def _without_secrets(url: str) -> str:
    """The URL without user:password and query string (where hosted APIs sometimes take a key)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else
                       parts.netloc, parts.path, "", ""))


def load_judge(path: Path) -> JudgeConfig:
    """Reads and checks a judge file; JudgeError names the file and every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JudgeError(f"{path}: judge file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise JudgeError(f"{path}: not a readable TOML judge file ({err})") from None
    problems = [f"unknown key {k!r} (known: {', '.join(KEYS)})" for k in data if k not in KEYS]
    for key in ("base_url", "model"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.append(f"{key} must be a non-empty string")
    if isinstance(data.get("base_url"), str) and not re.match(r"https?://", data["base_url"]):
        problems.append(f"base_url {data['base_url']!r} must start with http:// or https://")
    env = data.get("api_key_env")
    if env is not None and (not isinstance(env, str) or not env):
        problems.append("api_key_env must name an environment variable")
    elif env and not os.environ.get(env):
        problems.append(f"api_key_env names {env!r}, which is not set in the environment")
    template = data.get("prompt_template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or "{answer}" not in template:
        problems.append("prompt_template must be a string holding {answer} (and usually {question}, {reference})")
    for key, (low, high) in LIMITS.items():
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high
                                  or (key != "timeout_s" and not isinstance(value, int))):
            problems.append(f"{key} = {value!r} must be a number from {low} to {high}"
                            + ("" if key == "timeout_s" else " (a whole number)"))
    if importlib.util.find_spec("openai") is None:
        problems.append("the judge needs the openai client: pip install 'lalm-bench[openai]'")
    if problems:
        raise JudgeError(f"{path}: " + "; ".join(problems))
    return JudgeConfig(source=str(path), **{k: data[k] for k in KEYS if k in data})


def parse_score(reply: str | None) -> int | None:
    """N of the reply's last `Score: N`, when N is a whole number from 1 to 10; else None."""
    found = SCORE.findall(reply or "")
    if not found:
        return None
    value = float(found[-1])
    return int(value) if value.is_integer() and 1 <= value <= 10 else None


@dataclass
class Judgement:
    score: int | None  # None: unjudged
    reply: str | None  # the judge's raw reply
    error: str | None = None  # why there is no reply


def judge_all(config: JudgeConfig, items: list[tuple[str, str, str]]) -> list[Judgement]:
    """Judges (question, reference, answer) items, `concurrency` at a time, in order. A request is
    bounded by `timeout_s` and retried `max_retries` times (the openai client's backoff); one that
    still fails is unjudged with its error, never fatal."""
    if not items:
        return []
    try:
        from openai import OpenAI  # lazy: an optional dependency (extra `openai`)

        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        client = OpenAI(base_url=config.base_url, api_key=key or "EMPTY", timeout=config.timeout_s,
                        max_retries=config.max_retries)
    except Exception as err:  # no client, no judgement: every item is unjudged, with the reason
        return [Judgement(None, None, f"{type(err).__name__}: {err}") for _ in items]

    def one(item: tuple[str, str, str]) -> Judgement:
        try:
            answer = client.chat.completions.create(
                model=config.model, messages=[{"role": "user", "content": config.prompt(*item)}],
                temperature=0, max_tokens=config.max_tokens,
            )
            reply = answer.choices[0].message.content if answer.choices else None
        except Exception as err:  # a judge that fails one request must not lose the others
            return Judgement(None, None, f"{type(err).__name__}: {err}")
        return Judgement(parse_score(reply), reply)

    try:
        with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
            return list(pool.map(one, items))
    finally:
        client.close()
