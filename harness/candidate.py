"""The candidate contract: the one base class every candidate subclasses.

Required (abstract): `load(device)` and `generate(request, on_token)`, plus the class attribute
`tasks`. Every optional hook the harness may call is declared here once, typed and with a
default, so the worker calls hooks through this class and never looks one up by name: a
subclass method whose name is a near miss of a hook (`weight_byte`, `generate_batched`) is an
error when the class is defined, not a silent `null` in the record.

A family's options (the `[options]` table of a candidate TOML file) are a dataclass named in
`Options`; an unknown key is an error that names the key, the known ones and the nearest match.

A minimal plugin::

    from harness.candidate import Candidate
    from harness.types import Generation

    class Echo(Candidate):
        tasks = frozenset({"asr"})

        def load(self, device):
            ...

        def generate(self, request, on_token):
            on_token()                      # once per generated token, as soon as it exists
            return Generation(text="hello", n_tokens=1)
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from harness.options import parse_options
from harness.types import Generation, Request, TokenCallback

if TYPE_CHECKING:
    from harness.spec import CandidateSpec


@dataclass(frozen=True)
class NoOptions:
    """A family without options: any key under `[options]` is an error."""


@runtime_checkable
class SteppedDecoder(Protocol):
    """The two calls the nota2025 protocol times: encoding + prompt + one prefill forward, then
    one decode step with the KV cache. `state` is whatever the candidate needs to go on."""

    def prefill(self, request: Request) -> Any: ...

    def decode_step(self, state: Any) -> Any: ...


class Candidate(ABC):
    """Base class of every candidate (built-in families and plugins alike).

    Subclasses set `tasks` (the suites they can do, e.g. `frozenset({"asr", "aac"})`) and
    implement `load` and `generate`. The constructor takes the candidate's spec (name, recipe,
    options from its TOML file); an entry-point plugin may be built without one.
    """

    tasks: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type] = NoOptions
    supports_recipes: ClassVar[bool] = False  # False: a `recipe = [...]` in its TOML is an error

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_hook_names(cls)  # HOOKS exists by the time any subclass is defined

    def __init__(self, spec: CandidateSpec | None = None) -> None:
        self.spec = spec
        self.name: str = spec.name if spec is not None else type(self).__name__
        where = f"candidate {self.name!r} ({spec.source})" if spec is not None and spec.source else f"candidate {self.name!r}"
        self.options = parse_options(type(self).Options, dict(spec.options) if spec is not None else {}, where)
        self.recipe: list[str] = list(spec.recipe) if spec is not None else []
        if self.recipe and not self.supports_recipes:
            family = spec.family if spec is not None and spec.family else type(self).__name__
            raise ValueError(f"{where}: recipes are not supported by family {family!r} (got {self.recipe}); remove `recipe`")

    # ------------------------------------------------------------------ required

    @abstractmethod
    def load(self, device: str) -> None:
        """Loads the weights onto `device` ("cpu", "cuda", "cuda:1"). Runs inside the measured
        process after the memory baseline: everything it allocates counts as the model's."""

    @abstractmethod
    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        """Answers one request. Calls `on_token()` once per generated token as soon as it exists
        (or `on_token(count)` when an engine delivers `count` tokens at once); the harness owns
        the clock. `on_token(count, text)` also gives the tokens' text, which `bench.py serve`
        streams; compute it only when `harness.streaming.wants_text(on_token)` (or use
        `harness.streaming.reporter`), since the timers do not read it. Returns the text and, when known, `n_tokens` (else the callbacks are counted).
        Raising fails this sample only; the run goes on."""

    # ------------------------------------------------------------------ optional hooks

    def prepare(self) -> None:  # noqa: B027 (an optional hook: doing nothing is its default)
        """Builds or converts cached weights. When a class overrides it, it runs once in its own
        process before the measured one, so one-off work never counts as load time or memory."""

    def preload(self) -> None:  # noqa: B027 (an optional hook: doing nothing is its default)
        """Runs in the measured process *before* the memory baseline: import the libraries `load`
        uses and load what holds no weights and no recipe changes (tokenizer, feature extractor),
        so the peak measures the model, not `import transformers.models...` (~100 MB for
        Whisper). Never load weights here: they must count."""

    def weight_bytes(self) -> int | None:
        """Bytes the model's weights take as stored (quantized storage counted as packed)."""
        return None

    def weight_bytes_by_part(self) -> dict[str, int] | None:
        """The same, broken down by the family's recipe parts, plus "other"."""
        return None

    def decoder_weight_bytes(self) -> int | None:
        """Weight bytes read per generated token (the TPOT roofline). When a class overrides it,
        the worker also measures the copy bandwidth before the memory baseline."""
        return None

    def needs_calibration(self) -> bool:
        """True when a recipe step needs activations (e.g. prune drop=auto) before `load` ends."""
        return False

    def set_calibration(self, requests: list[Request]) -> None:  # noqa: B027 (an optional hook: doing nothing is its default)
        """Receives the calibration requests (before `load`) when `needs_calibration()`."""

    def recipe_applied(self) -> list[dict[str, Any]] | None:
        """What each recipe step did, for the run record (after `load`)."""
        return None

    def stepped_decoder(self) -> SteppedDecoder | None:
        """The prefill / decode-step pair the nota2025 protocol times, or None (unsupported)."""
        return None

    def generate_batch(self, requests: list[Request]) -> list[Generation]:
        """Answers several requests at once for an untimed quality pass; the default answers them
        one at a time. Results are in request order; timing is never taken from this call."""
        return [self.generate(request, _ignore_tokens) for request in requests]

    def model_prompt(self, task: str) -> str | None:
        """The prompt the model's authors publish for `task` (used with `run --prompts model`),
        or None: the suite's prompt is used."""
        return None

    def audio_window_s(self) -> float | None:
        """The longest audio (seconds) the model takes in one request, or None (no limit, or the
        engine chunks by itself). Longer audio is chunked, truncated or refused by the harness
        (`run --long-audio`), never silently cut by the candidate."""
        return None

    def preferred_window_s(self) -> float | None:
        """The window (seconds) `--long-audio chunk` cuts long audio into, when shorter than
        `audio_window_s()` works better for this model (e.g. Whisper without timestamps stops
        early on 30 s of dense speech); None: `audio_window_s()`."""
        return None

    def generate_long_form(self, request: Request, on_token: TokenCallback) -> Generation:
        """The model's own algorithm for audio longer than `audio_window_s()` (`run --long-audio
        native`), given the whole clip. A class that overrides it declares it has one, and
        `native` becomes its default wherever the suite would chunk (asr). `on_token` as in
        `generate`, over the whole answer. `Generation.info["segments"]`, when given, is a list
        of {"start_s", "end_s", "text"} that the record turns into its `windows`."""
        raise NotImplementedError(f"candidate {self.name!r} has no long-form algorithm of its own")

    def external_memory(self) -> dict[str, Any] | None:
        """Memory measured outside the measured process (e.g. a served model's server), which then
        replaces the process's own peak in the record; None: the process's peak is the model's.
        Read after the last request, before `close`. Keys: `peak_mb` (None when it cannot be seen,
        never a guess), `kind` (what was measured) and `reason` (why it is None, or how)."""
        return None

    def served_by(self) -> str | None:
        """For a model that runs outside the measured process (a server the candidate calls): what
        serves it (e.g. "tiny at http://127.0.0.1:8000/v1"), shown as the record's device name;
        the measured process is then a client that imports no framework (no torch) and holds no
        device. None (default): the model runs in the measured process. Called before `load`."""
        return None

    def imports_torch(self) -> bool:
        """Whether the candidate computes with torch in the measured process (default: unless it is
        served). False lets the child skip importing torch and transformers and priming torch's
        kernels before the memory baseline (seconds per run), and places it on the CPU under
        `--device auto`: a candidate that never imports them has nothing to gain from them."""
        return self.served_by() is None

    def export(self, out_dir: Path, provenance: dict[str, Any]) -> dict[str, Any]:
        """Writes the loaded model (its recipe applied) to `out_dir` so that it loads already
        quantized, and returns the export's manifest (a dict with at least `format` and
        `runtime_recipe`: the steps an exported candidate still applies at load). `bench.py
        export` calls it after `load("cpu")`; `provenance` (source candidate, recipe, time,
        version) goes into the manifest. Default: not exportable."""
        raise NotImplementedError(f"candidate {self.name!r} cannot be exported")

    def run_info(self) -> dict[str, Any]:
        """Extra facts for the run record (e.g. the prompt texts used); read after the run."""
        return {}

    def close(self) -> None:  # noqa: B027 (an optional hook: doing nothing is its default)
        """Releases what `load` started (threads, connections); called once at the end."""


def _ignore_tokens(count: int = 1) -> None:
    return None


HOOKS: tuple[str, ...] = tuple(
    name for name, value in vars(Candidate).items() if callable(value) and not name.startswith("_")
)
STEPPED_HOOKS = ("prefill", "decode_step")


def overrides(candidate: Candidate, hook: str) -> bool:
    """Whether the candidate's class provides its own `hook` (a declared hook, never any name)."""
    if hook not in HOOKS:
        raise ValueError(f"{hook!r} is not a candidate hook; hooks: {', '.join(HOOKS)}")
    return getattr(type(candidate), hook) is not getattr(Candidate, hook)


def _check_hook_names(cls: type) -> None:
    known = set(HOOKS) | set(STEPPED_HOOKS)
    for name, value in vars(cls).items():
        if name.startswith("_") or name in known or not callable(value):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if close:
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__}.{name}: not a candidate hook, but close to "
                f"{close[0]!r}; rename it (hooks: {', '.join(sorted(known))})"
            )


