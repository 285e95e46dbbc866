"""The one base of every transformers family (`salmonn`, `whisper`, `hf-audiolm` and its adapters).

What is the same for all of them lives here: loading (processor + model class through
`from_pretrained(local_files_only=True)`, after the checkpoint trust check), recipes (dtype and
bitsandbytes at load, the other steps after it), weight bytes (total, by part, read per token),
the model's own prompts, the audio window, greedy generation with each token reported as it
exists (harness/streaming.py), batched greedy generation with left padding, and the
prefill / decode-step pair the nota2025 protocol times.

A family says only what differs: its parts (`PARTS`), its model class, how a list of requests
becomes model inputs (`model_inputs`), and, where its model is not a decoder-only LLM fed
`input_ids`, which module generates and which output tokens are new.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from candidates import recipes
from harness.candidate import Candidate
from harness.measure.memory import tensor_bytes
from harness.spec import CandidateSpec
from harness.streaming import reporter, text_callback, transformers_streamer, wants_text
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt"}


class LongAudioError(ValueError):
    """A clip longer than the model's window reached the family: the harness splits or cuts long
    audio (`run --long-audio`); a family never cuts it silently."""


def check_checkpoint(path: Path, allow_pickle: bool, who: str = "checkpoint") -> None:
    """Refuses what would run code on load, before anything is read; `who` names the family and
    candidate in the message."""
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{who}: no checkpoint at {path} (config.json missing); set `model_path` under "
                                "[options] to a folder saved with save_pretrained")
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles and not allow_pickle:
        raise PermissionError(
            f"{who}: {path} holds only pickle weights ({', '.join(pickles)}); unpickling runs code, so they are "
            "refused. Convert them to safetensors, or set `allow_pickle = true` under [options] if you trust them."
        )


# Modules of this repository that candidate files name and that moved (candidates/ by role,
# 2026-12): a file naming the old path is told the new one instead of "no module named".
MOVED_MODULES = {"candidates.audio_processors": "candidates.models.audio_processors"}


def resolve_class(name: str):
    """A transformers class by name ("Qwen2AudioForConditionalGeneration"), or "module:attr"."""
    import importlib

    import transformers

    if ":" in name:
        module, _, attr = name.partition(":")
        if module in MOVED_MODULES:
            raise ValueError(f"{name!r}: that module moved; write \"{MOVED_MODULES[module]}:{attr}\" in the candidate file")
        return getattr(importlib.import_module(module), attr)
    try:
        return getattr(transformers, name)
    except AttributeError:
        raise ValueError(f"transformers {transformers.__version__} has no class {name!r}") from None


@dataclass(frozen=True)
class TransformersOptions:
    model_path: str | None = None  # a local checkpoint folder; default: the family's built-in one
    allow_pickle: bool = False  # accept .bin/.pt weights (unpickling runs code)
    trust_remote_code: bool = False  # run the checkpoint's own Python code (off unless set)
    prompts: dict[str, str] = field(default_factory=dict)  # task -> the prompt the model's authors publish
    # Apply the recipe once in prepare() (unmeasured) and load that export, as a deployment would.
    pre_quantize: bool = False
    max_new_tokens: int | None = None  # caps each request's token budget below the suite's
    lora: str | None = None  # a LoRA adapter folder or .safetensors file (candidates/recipes/lora.py)
    lora_merge: bool = False  # merge the adapter into the weights before the recipe (once, in prepare())

    def __post_init__(self):
        if self.lora_merge and not self.lora:
            raise ValueError("lora_merge = true needs an adapter: set `lora` to its folder or .safetensors file")
        if self.pre_quantize and self.lora and not self.lora_merge:
            raise ValueError("pre_quantize exports the model with its recipe, and an unmerged adapter cannot be "
                             "exported: set lora_merge = true to quantize the merged weights")


# Random weights never emit an end token, so they would decode to the suite's budget (64) on every
# clip: TTFT and TPOT are the same over 16 tokens, at a quarter of the time. `max_new_tokens` overrides.
RANDOM_WEIGHTS_TOKEN_BUDGET = 16


class TransformersCandidate(recipes.RecipeHooks, Candidate):
    """A model loaded with transformers and decoded greedily; see the module docstring."""

    Options: ClassVar[type] = TransformersOptions
    family: ClassVar[str] = "transformers"  # the family name used in messages
    PARTS: ClassVar[dict[str, str]] = {}  # recipe part -> module path
    KEEP_FULL_PRECISION: ClassVar[tuple[str, ...]] = ()  # modules bitsandbytes steps leave alone
    MODEL_PROMPTS: ClassVar[dict[str, str]] = {}  # task -> the authors' published prompt (source in a comment)
    MODEL_CLASS: ClassVar[str] = ""
    FAMILY_OPS: ClassVar[frozenset[str]] = frozenset()  # recipe steps only this family implements (audio-ctx)

    def __init__(self, spec: CandidateSpec | None = None):
        super().__init__(spec)
        self.parts = self.recipe_parts()
        self.steps = recipes.parse(self.recipe, self.parts, family_ops=self.FAMILY_OPS)
        self.calibration: list[Request] = []
        self.applied: list[dict] = []
        self.model = None
        self.processor = None

    # ------------------------------------------------------------ what a family says

    def recipe_parts(self) -> dict[str, str]:
        return dict(self.PARTS)

    def keep_full_precision(self) -> list[str]:
        return list(self.KEEP_FULL_PRECISION)

    def model_class_name(self) -> str:
        return self.MODEL_CLASS

    def default_is_random(self) -> bool:
        """True when the built-in default checkpoint holds random weights (a tiny model built offline)."""
        return False

    def random_weights(self) -> bool:
        return not self.options.model_path and self.default_is_random()

    def run_info(self) -> dict[str, Any]:
        # The leaderboard marks such rows: their quality numbers measure nothing about a real model.
        if not self.random_weights():
            return {}
        return {"weights": "random", "max_new_tokens": self.options.max_new_tokens or RANDOM_WEIGHTS_TOKEN_BUDGET}

    def default_checkpoint(self) -> Path:
        """The built-in checkpoint used without `model_path` (built on first use)."""
        raise FileNotFoundError(f"{self.label()}: set `model_path` under [options] to a local checkpoint folder")

    def load_processor(self, path: Path, common: dict[str, Any]) -> Any:
        import transformers

        return transformers.AutoProcessor.from_pretrained(path, **common)

    def after_load(self) -> None:  # noqa: B027 (optional: most families need nothing more)
        """Runs after the weights are on the device, before the post-load recipe steps."""

    @abstractmethod
    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        """Keyword arguments of `generator().generate` and `forward_module()` for these requests,
        padded on the left when there are several."""

    def generator(self):
        """The module whose `generate` runs (a composite's LLM when it is fed embeddings)."""
        return self.model

    def forward_module(self):
        return self.generator()

    def generate_kwargs(self) -> dict[str, Any]:
        return {}

    def new_tokens(self, output, inputs: dict[str, Any]):
        """The generated ids (batch, n): what follows the prompt ids in `generate`'s output."""
        sequences = getattr(output, "sequences", output)
        prompt = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
        return sequences[:, prompt:]

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    # ------------------------------------------------------------ loading

    def label(self) -> str:
        return f"{self.family} ({self.name})"

    def prepare(self) -> None:
        """Builds the default checkpoint when no `model_path` is set, with `lora_merge` the merged
        checkpoint, and with `pre_quantize` exports the recipe once (its own process, before measuring)."""
        if not self.options.model_path:
            self.default_checkpoint()
        if self.options.lora_merge:
            self.base_checkpoint()
        if self.options.pre_quantize:
            from candidates.recipes.export import ensure_exported

            ensure_exported(self.spec)

    def checkpoint_path(self) -> Path:
        if self.options.pre_quantize:
            from candidates.recipes.export import ensure_exported

            return ensure_exported(self.spec)  # already there when prepare() ran
        return self.base_checkpoint()

    def base_checkpoint(self) -> Path:
        """The weights the recipe starts from: `model_path` (or the built-in one), with `lora_merge`
        that checkpoint with the adapter merged in (built once into the cache)."""
        path = self.source_checkpoint()
        if not self.options.lora_merge:
            return path
        from candidates.recipes import lora

        check_checkpoint(path, self.options.allow_pickle, self.label())
        return lora.merged_checkpoint(path, self.adapter(), resolve_class(self.model_class_name()), self.label(),
                                      trust_remote_code=self.options.trust_remote_code)

    def source_checkpoint(self) -> Path:
        return Path(self.options.model_path) if self.options.model_path else self.default_checkpoint()

    def adapter(self):
        """The `lora` option as a checked adapter (candidates/recipes/lora.py), or None."""
        if not self.options.lora:
            return None
        from candidates.recipes import lora

        return lora.find(self.options.lora, self.label())

    def _common(self) -> dict[str, Any]:
        return {"local_files_only": True, "trust_remote_code": self.options.trust_remote_code}

    def preload(self) -> None:
        """Before the memory baseline: the model class's modules (~100 MB of imports for
        Whisper), the recipe's libraries and the processor (tokenizer + feature extractor, which
        no recipe changes). Never weights."""
        import transformers.generation.streamers  # noqa: F401 (imported now for its memory)

        from candidates.recipes.export import read_manifest

        resolve_class(self.model_class_name())
        path = self.checkpoint_path()
        check_checkpoint(path, self.options.allow_pickle, self.label())  # refuse before reading anything
        manifest = read_manifest(path)  # an export: the libraries of the steps baked into it too
        baked = recipes.parse(manifest.baked_recipe, self.parts) if manifest is not None else []
        recipes.preload_imports(self.steps + baked)
        unmerged = self.adapter() is not None and not self.options.lora_merge
        if not self.options.pre_quantize and (unmerged or (path / "adapter_config.json").is_file()):
            from candidates.recipes import lora

            lora.preload()  # an adapter will be put on at load (or transformers loads the checkpoint's own)
        self.processor = self.load_processor(path, self._common())

    def load(self, device: str) -> None:
        from candidates.recipes import export

        path = self.checkpoint_path()
        check_checkpoint(path, self.options.allow_pickle, self.label())
        common = self._common()
        if self.processor is None:  # preload() did not run (a direct call, not the harness)
            self.processor = self.load_processor(path, common)
        # An exported folder loads pre-quantized; an ordinary one with the recipe's load-time steps.
        loaded = export.load(resolve_class(self.model_class_name()), path, self.steps, self.parts, device,
                             keep=self.keep_full_precision(), use_safetensors=not self.options.allow_pickle, **common)
        self.model, self.device, self.dtype = loaded.model, device, loaded.dtype
        self._check_parts()
        forward = inspect.signature(self.forward_module().forward).parameters
        # transformers renamed some forwards' `past_key_values` to `cache` (5.2x); use what this one has.
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"
        adapted = self.attach_adapter(path)  # before the post-load steps, which then see the LoRA layers
        self.after_load()
        self.applied = loaded.applied + adapted + recipes.apply(self.model, loaded.steps, self.parts, self.hidden_states)

    def attach_adapter(self, path: Path) -> list[dict]:
        """Puts the `lora` adapter on the loaded model (unmerged), or says that it is merged into
        the loaded weights; what it says goes into the run record's recipe_applied."""
        from candidates.recipes import lora

        if self.options.pre_quantize:
            return []  # an export: the merged adapter is in its weights and its recipe_applied
        merged = lora.merge_record(path)
        if merged is not None:
            return [{"step": "lora", "merged": True, "at": "prepare", "merged_checkpoint": str(path), **merged}]
        adapter = self.adapter()
        if lora.has_adapter(self.model):  # transformers loaded the checkpoint's own (its adapter_config.json)
            if adapter is not None:
                raise lora.AdapterError(f"{self.label()}: {path} ships its own adapter, which transformers loaded with "
                                        f"it; a second one (lora = {adapter.given!r}) on top is not supported")
            return [{"step": "lora", "merged": False, "at": "load", "adapter": f"{path} (the checkpoint's own)",
                     "lora_layers": len(lora.tuner_layers(self.model))}]
        if adapter is None:
            return []
        return [{"step": "lora", "merged": False, "at": "load", **lora.attach(self.model, adapter, self.label())}]

    def needs_calibration(self) -> bool:
        """Only when the steps run here: a `pre_quantize` candidate loads its export, calibrated
        once when `prepare()` made it."""
        return not getattr(self.options, "pre_quantize", False) and super().needs_calibration()

    def export(self, out_dir: Path, provenance: dict[str, Any]) -> dict[str, Any]:
        """Writes the loaded model, its recipe applied, so that it loads pre-quantized (candidates/recipes/export.py)."""
        from candidates.recipes import lora
        from candidates.recipes.export import ExportError, export_model

        if lora.has_adapter(self.model):
            raise ExportError(f"{self.label()}: an unmerged LoRA adapter cannot be exported; set lora_merge = true so "
                              "that the export holds the merged (and then quantized) weights")
        return export_model(self.model, self.processor, out_dir, self.steps, self.applied, provenance).to_dict()

    def _check_parts(self) -> None:
        for name, path in self.parts.items():
            try:
                recipes.module_at(self.model, path)
            except AttributeError:
                top = ", ".join(n for n, _ in self.model.named_children())
                raise ValueError(f"{self.label()}: part {name} = {path!r} is not a module of "
                                 f"{type(self.model).__name__} (its top-level modules: {top}); fix `parts`") from None

    def hidden_states(self, _part) -> list:
        """Per calibration request, the LLM's hidden states over the prompt (prune drop=auto)."""
        import torch

        with torch.inference_mode():
            return [self.forward_module()(**self.inputs([r]), output_hidden_states=True).hidden_states
                    for r in self.calibration]

    # ------------------------------------------------------------ weights

    def weight_bytes(self) -> int:
        return tensor_bytes(self.model)

    def weight_bytes_by_part(self) -> dict[str, int]:
        return recipes.bytes_by_part(self.model, self.parts)

    def decoder_weight_bytes(self) -> int:
        """Read per generated token: the LLM less its embedding tables (one row of each is read:
        the token table, Gemma's per-layer tables) and less any other part nested in it
        (Phi-4-multimodal keeps its audio encoder inside its LM), plus the output projection (all
        of it, also when it shares the token table)."""
        import torch

        llm = recipes.module_at(self.model, self.parts["llm"])
        nested = [recipes.module_at(self.model, path) for name, path in self.parts.items()
                  if name != "llm" and path.startswith(self.parts["llm"] + ".")]
        inner = {id(p) for m in nested for p in m.parameters()}
        tables = [m for m in llm.modules() if isinstance(m, torch.nn.Embedding) and id(m.weight) not in inner]
        head = getattr(llm, "get_output_embeddings", lambda: None)() or self.model.get_output_embeddings()
        inside = any(module is head for module in llm.modules())
        tied = head is not None and any(head.weight is t.weight for t in tables)
        total = tensor_bytes(llm) - sum(tensor_bytes(m) for m in nested + tables)
        return total + (tensor_bytes(head) if head is not None and (tied or not inside) else 0)

    # ------------------------------------------------------------ prompts and audio window

    def model_prompt(self, task: str) -> str | None:
        return self.options.prompts.get(task) or self.MODEL_PROMPTS.get(task)

    def audio_window_s(self) -> float | None:
        return None

    def inputs(self, requests: list[Request]) -> dict[str, Any]:
        """`model_inputs`, after refusing audio longer than the model's window."""
        window = self.audio_window_s()
        for request in requests:
            seconds = len(request.audio) / SAMPLE_RATE
            if window is not None and seconds > window + 1e-6:
                raise LongAudioError(
                    f"{self.label()}: sample {request.sample_id} is {seconds:.1f} s, longer than the model's "
                    f"{window:g} s window; the harness splits or cuts long audio (run --long-audio), the family "
                    "never cuts it itself"
                )
        return self.model_inputs(requests)

    # ------------------------------------------------------------ generation

    def eos_ids(self) -> set[int]:
        eos = self.generate_kwargs().get("eos_token_id", self.generator().generation_config.eos_token_id)
        return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])

    def token_budget(self, request: Request) -> int:
        """How many new tokens this request may get (a family caps it where its model must)."""
        cap = self.options.max_new_tokens or (RANDOM_WEIGHTS_TOKEN_BUDGET if self.random_weights() else None)
        return request.max_new_tokens if cap is None else max(1, min(request.max_new_tokens, cap))

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        """Greedy, each token reported as it exists (with its text to a callback that wants it,
        harness/streaming.py); the tokens streamed must be the ids returned,
        else TPOT would be computed over other tokens than the ones counted (a sample error)."""
        import torch

        streamed = 0
        report = reporter(on_token)

        def counted(count: int = 1, text: str | None = None) -> None:
            nonlocal streamed
            streamed += count
            report(count, text)

        if wants_text(on_token):
            text_callback(counted)  # each token's text, decoded as the answer is (see harness/streaming.py)
        with torch.inference_mode():
            inputs = self.inputs([request])
            output = self.generator().generate(
                **inputs,
                max_new_tokens=self.token_budget(request),
                do_sample=False,
                streamer=transformers_streamer(counted, self.decode),
                **self.generate_kwargs(),
            )
        new = self.new_tokens(output, inputs)[0]
        if streamed != new.shape[0]:
            raise RuntimeError(f"{self.label()}: {streamed} tokens streamed but {new.shape[0]} generated for "
                               f"sample {request.sample_id}; the streamer and new_tokens disagree")
        return Generation(text=self.decode(new), n_tokens=int(new.shape[0]))

    def batch_groups(self, requests: list[Request]) -> list[list[int]]:
        """Which requests may share a batch (indices); by default all of them. A family whose audio
        encoder lets padding reach the real frames batches only clips of equal length."""
        return [list(range(len(requests)))]

    def generate_batch(self, requests: list[Request]) -> list[Generation]:
        """Greedy, in padded batches (left padding for decoder-only LLMs), equal to one at a time.
        Each row is cut after its first end token and at its own `max_new_tokens`: greedy decoding
        is causal, so the tokens a row had by then do not depend on how long the batch went on."""
        results: list[Generation | None] = [None] * len(requests)
        for group in self.batch_groups(requests):
            for index, generation in zip(group, self._generate_together([requests[i] for i in group]), strict=True):
                results[index] = generation
        return results

    def _generate_together(self, requests: list[Request]) -> list[Generation]:
        import torch

        with torch.inference_mode():
            inputs = self.inputs(requests)
            output = self.generator().generate(
                **inputs, max_new_tokens=max(self.token_budget(r) for r in requests), do_sample=False,
                **self.generate_kwargs(),
            )
        eos = self.eos_ids()
        generations = []
        for request, row in zip(requests, self.new_tokens(output, inputs).tolist(), strict=True):
            row = row[: self.token_budget(request)]
            end = next((i for i, token in enumerate(row) if token in eos), None)
            row = row if end is None else row[: end + 1]
            generations.append(Generation(text=self.decode(row), n_tokens=len(row)))
        return generations

    # ------------------------------------------------------------ stepped decoder (nota2025)

    def stepped_decoder(self) -> TransformersCandidate:
        return self

    def prefill(self, request: Request) -> dict:
        """Audio encoding + prompt wrapping + one prefill forward (the nota2025 TTFT)."""
        import torch

        with torch.inference_mode():
            out = self.forward_module()(**self.inputs([request]), use_cache=True)
        return {"cache": cache_of(out), "token": out.logits[:, -1:].argmax(-1)}

    def decode_step(self, state: dict) -> dict:
        """One greedy decode step with the KV cache (the nota2025 TPOT)."""
        import torch

        with torch.inference_mode():
            out = self.forward_module()(input_ids=state["token"], use_cache=True, **{self._cache_arg: state["cache"]})
        return {**state, "cache": cache_of(out), "token": out.logits[:, -1:].argmax(-1)}


def cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
