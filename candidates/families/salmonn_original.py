"""Family `salmonn-original`: an original SALMONN checkpoint run as the NOTA 2025 organisers ran it.

The organisers' `salmonn_eval_config.yaml` runs as it is (`bench.py run -c salmonn_eval_config.yaml`,
read by candidates/families/salmonn_yaml.py), or a candidate TOML with `family = "salmonn-original"`
and the YAML's `model:` keys under `[options]` (plus `generate = {...}`).

What loads from where (the organisers' `SALMONN.from_config`):
- `whisper_path`: a transformers Whisper checkpoint folder; its encoder and feature extractor;
- `beats_path`: a BEATs `.pt` ({"cfg", "model"}); empty: speech only, as the original allows;
- `llama_path`: a transformers causal LM folder and its tokenizer; `[PAD]` is added to the
  tokenizer and the embeddings resized; with `lora = true` it is wrapped by peft (LoraConfig
  r=`lora_rank`, alpha=`lora_alpha`, on peft's default modules for the architecture);
- `ckpt`: `torch.load(ckpt)["model"]`, loaded by name with strict=False: the LayerNorms, the
  Q-Former, the query tokens, the projector and the LoRA A/B; also the tied LM head (with the
  `[PAD]` row) and BEATs' shared position table, which overwrite what was loaded (as in the
  original). Every other key is named in a warning; `torch.load(weights_only=True)` runs no code.
Prompt: `prompt_template` around "<Speech><SpeechHere></Speech> " + the instruction, split at
<SpeechHere>; the LLM input is [BOS, before, speech tokens, after]. Decoding: the YAML's
`generate:` section (beam search with num_beams, ...), the output cut at `end_sym` and lower-cased.

The LLM's weights load in float16, as the original loads them. On the CPU everything then computes
in float32 (the original relies on CUDA autocast, which a CPU lacks); on a GPU in float16, the
original's autocast dtype, unless the recipe names one (unverified: no GPU in the session that
wrote this).
Recipe parts: speech_encoder, beats, qformer, proj, llm; `lora-merge:llm` merges the LoRA into the
LLM before any quantization step (else it is kept apart, on top of the quantized LLM).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from candidates import recipes
from candidates.families.transformers_base import TransformersCandidate
from harness.spec import CandidateSpec
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PARTS = {"speech_encoder": "speech_encoder", "beats": "beats", "qformer": "speech_Qformer",
         "proj": "speech_llama_proj", "llm": "llama_model"}
SPEECH_PREFIX = "<Speech><SpeechHere></Speech> "  # the organisers' test prompts all start so
PLACEHOLDER = "<SpeechHere>"
# The organisers' test prompts (audiolm-trainer prompts/test_prompt.json), used without `test_prompt_path`.
ORGANISER_PROMPTS = {"asr": "Recognize the speech and give me the transcription.",
                     "aac": "Please describe the audio."}
# Our suite names -> the keys of the organisers' test_prompt.json.
PROMPT_FILE_KEYS = {"aac": "audiocaption"}
# The `generate:` keys the organisers' evaluator passes to `generate`, with its defaults.
GENERATE_DEFAULTS: dict[str, Any] = {"max_new_tokens": 200, "num_beams": 4, "do_sample": False, "min_length": 1,
                                     "temperature": 1.0, "top_p": 0.9, "repetition_penalty": 1.0,
                                     "length_penalty": 1.0}
GENERATE_KEYS = set(GENERATE_DEFAULTS) | {"end_sym"}
PATH_KEYS = ("llama_path", "whisper_path", "beats_path", "ckpt", "speech_llama_proj_model", "test_prompt_path")
# Keys of the organisers' `model:` section that only matter for training; accepted, recorded, unused.
TRAINING_ONLY = ("freeze_whisper", "freeze_beats", "freeze_speech_QFormer", "freeze_speech_llama_proj",
                 "lora_dropout", "multi_prompt", "prompt_path", "max_txt_len", "only_preprocessor")


@dataclass(frozen=True)
class OriginalOptions:
    """The `model:` keys of the organisers' YAML (same names, same defaults as `SALMONN.from_config`)."""

    llama_path: str = ""
    whisper_path: str = ""
    beats_path: str = ""
    ckpt: str = ""
    token: str = ""  # a hub token: unused, everything loads from local folders
    use_speech_Qformer: bool = True
    window_level_Qformer: bool = True
    num_speech_query_token: int = 1
    second_per_window: float = 0.333333
    second_stride: float = 0.333333
    speech_llama_proj_model: str = ""
    lora: bool = True
    lora_rank: int = 8
    lora_alpha: int = 32
    prompt_template: str = "USER: {}\nASSISTANT:"
    test_prompt_path: str = ""
    end_sym: str = "</s>"
    low_resource: bool = False
    device_8bit: int = 0
    # training-only keys (see TRAINING_ONLY)
    freeze_whisper: bool = True
    freeze_beats: bool = True
    freeze_speech_QFormer: bool = False
    freeze_speech_llama_proj: bool = False
    lora_dropout: float = 0.1
    multi_prompt: bool = False
    prompt_path: str = ""
    max_txt_len: int = 128
    only_preprocessor: bool = False
    # ours
    model_path: str = ""  # a folder written by `bench.py export` of this family (its YAML gives the rest)
    generate: dict[str, Any] = field(default_factory=dict)  # the YAML's `generate:` section
    prompts: dict[str, str] = field(default_factory=dict)  # task -> instruction (after the speech tag)
    config_dir: str = ""  # relative paths resolve against it, then the working directory
    source_config: str = ""  # the YAML this came from, for messages

    def __post_init__(self):
        unknown = sorted(set(self.generate) - GENERATE_KEYS)
        if unknown:
            raise ValueError(f"generate: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(GENERATE_KEYS))}")
        if not self.use_speech_Qformer or not self.window_level_Qformer:
            raise ValueError("use_speech_Qformer and window_level_Qformer must be true (the original raises "
                             "NotImplementedError without the Q-Former; the clip-level Q-Former is not supported)")
        if self.low_resource:
            raise ValueError("low_resource (8-bit LLM through bitsandbytes) is set: use the recipe `int8:llm` instead")


def resolve_path(value: str, key: str, config_dir: str, where: str, must_exist: bool = True) -> Path | None:
    """`value` as given if absolute, else against the config's folder, then the working directory."""
    if not value:
        return None
    path = Path(value).expanduser()
    tried = [path] if path.is_absolute() else [Path(config_dir) / path, Path.cwd() / path] if config_dir else [path]
    for candidate in tried:
        if candidate.exists():
            return candidate.resolve()
    if not must_exist:
        return tried[0]
    raise FileNotFoundError(f"{where}: `{key}` = {value!r} not found (looked at {', '.join(str(t) for t in tried)}); "
                            f"set `{key}` to a local path (no hub downloads)")


def timing_processor(on_token: TokenCallback):
    """A logits processor that reports one token per decoding step: it runs once per step in
    every decoding mode (greedy, beam search, sampling), where transformers' streamer refuses
    beam search. The first call comes right after the prefill forward (TTFT)."""
    from transformers import LogitsProcessor

    class StepMarker(LogitsProcessor):
        def __init__(self):
            self.steps = 0

        def __call__(self, input_ids, scores):
            self.steps += 1
            on_token(1)
            return scores

    return StepMarker()


class SalmonnOriginalCandidate(TransformersCandidate):
    """Whisper + BEATs + window-level Q-Former + projector + LLM with LoRA, as the organisers ran it."""

    tasks = frozenset({"asr", "aac"})
    family = "salmonn-original"
    Options: ClassVar[type] = OriginalOptions
    PARTS = PARTS
    FAMILY_OPS = frozenset({"lora-merge"})

    def __init__(self, spec: CandidateSpec | None = None):
        super().__init__(spec)
        bad = [s.text for s in self.steps if s.op in ("nf4", "int8") and s.part != "llm"]
        if bad:
            raise recipes.RecipeError(f"{self.label()}: {', '.join(bad)}: bitsandbytes steps apply to the llm only "
                                      "in this family (use int8-dynamic:PART for the others)")
        self.merge_lora = any(s.op == "lora-merge" for s in self.steps)
        swapped = [s.text for s in self.steps if s.op in ("int8-dynamic", "torchao-int8") and s.part in ("llm", "all")]
        if swapped and not self.merge_lora and self.options.lora:
            raise recipes.RecipeError(f"{self.label()}: {', '.join(swapped)} replaces the LLM's linears, the LoRA's "
                                      "included, which peft then cannot run; add `lora-merge:llm` before it")
        if self.merge_lora and not self.lora_on():
            raise recipes.RecipeError(f"{self.label()}: lora-merge:llm needs `lora = true`")
        self.load_report: dict[str, Any] = {}
        self.tokenizer_ = None

    # ------------------------------------------------------------ paths and options

    def where(self) -> str:
        return self.options.source_config or (self.spec.source if self.spec else self.name)

    def uses_tiny(self) -> bool:
        """No paths at all: the built-in tiny original-format model (built on first use)."""
        return not (self.options.llama_path or self.options.whisper_path or self.options.source_config
                    or self.options.model_path)

    def _export_config(self) -> dict[str, Any] | None:
        """The `model:` section of an exported folder's YAML (`model_path`), or None."""
        if not self.options.model_path:
            return None
        import yaml

        config = Path(self.options.model_path) / "salmonn_eval_config.yaml"
        if not config.is_file():
            raise FileNotFoundError(f"{self.where()}: `model_path` = {self.options.model_path}: no "
                                    "salmonn_eval_config.yaml there (is it a folder written by `bench.py export`?)")
        return yaml.safe_load(config.read_text(encoding="utf-8"))["model"]

    def lora_on(self) -> bool:
        exported = self._export_config()
        return bool(exported["lora"]) if exported is not None else self.options.lora

    def path_of(self, key: str, must_exist: bool = True) -> Path | None:
        exported = self._export_config()
        if exported is not None:
            value = exported.get(key)
            return resolve_path(value, key, self.options.model_path, self.where(), must_exist) if value else None
        if self.uses_tiny():
            from candidates.checkpoints.salmonn_original_tiny import TINY_FILES, ensure_tiny

            return ensure_tiny() / TINY_FILES[key] if key in TINY_FILES else None
        return resolve_path(getattr(self.options, key), key, self.options.config_dir, self.where(), must_exist)

    def end_sym(self) -> str:
        if self.uses_tiny() and "end_sym" not in self.options.generate:
            from candidates.checkpoints.salmonn_original_tiny import SPECIAL

            return SPECIAL[1]
        return self.options.generate.get("end_sym", self.options.end_sym)

    def generate_config(self) -> dict[str, Any]:
        return {**GENERATE_DEFAULTS, **self.options.generate}

    def decoding(self) -> str:
        g = self.generate_config()
        mode = "sample" if g["do_sample"] else "greedy" if g["num_beams"] == 1 else f"beam-{g['num_beams']}"
        return mode

    def model_prompt(self, task: str) -> str | None:
        if task in self.options.prompts:
            return self.options.prompts[task]
        path = self.path_of("test_prompt_path", must_exist=False)
        if path is not None and path.is_file():
            import json

            prompts = json.loads(path.read_text(encoding="utf-8"))
            text = prompts.get(task) or prompts.get(PROMPT_FILE_KEYS.get(task, task))
            if text is not None:
                return text.removeprefix(SPEECH_PREFIX)
        return ORGANISER_PROMPTS.get(task)

    def audio_window_s(self) -> float:
        return 30.0  # the organisers truncate to 30 s; Whisper's window

    # ------------------------------------------------------------ loading

    def prepare(self) -> None:
        if self.uses_tiny():
            self.path_of("llama_path")  # builds it once
            return
        for key in ("llama_path", "whisper_path"):
            if not getattr(self.options, key):
                raise FileNotFoundError(f"{self.where()}: `{key}` is not set")
            self.path_of(key)
        for key in ("beats_path", "ckpt"):
            self.path_of(key)

    def preload(self) -> None:
        import peft  # noqa: F401 (imported before the memory baseline)
        import transformers.generation.streamers  # noqa: F401
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        recipes.preload_imports(self.steps)
        self.prepare()
        self.features = WhisperFeatureExtractor.from_pretrained(self.path_of("whisper_path"), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(self.path_of("llama_path"), use_fast=False, local_files_only=True)
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        tokenizer.padding_side = "right"
        self.processor = tokenizer

    def _dtype(self, device: str):
        import torch

        named = next((s.op for s in self.steps if s.op in recipes.DTYPES), None)
        if named:
            return getattr(torch, recipes.DTYPES[named])
        return torch.float16 if device.startswith("cuda") else torch.float32  # the organisers' CUDA autocast dtype

    def _load_llm(self, device: str, dtype, quantize: bool):
        import torch
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        # The original loads the LLM in float16 (`torch_dtype=torch.float16`); its weights are
        # those float16 values, computed here in `dtype` (float32 on the CPU) after the upcast.
        kwargs: dict[str, Any] = {"dtype": torch.float16, "local_files_only": True}
        bnb = next((s for s in self.steps if s.op in ("nf4", "int8")), None)
        if bnb is not None and quantize:
            config = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                                         llm_int8_skip_modules=["lm_head"]) if bnb.op == "nf4"
                      else BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"]))
            kwargs.update(quantization_config=config, device_map=device, dtype=dtype)
        llm = AutoModelForCausalLM.from_pretrained(self.path_of("llama_path"), **kwargs)
        # mean_resizing=False: the new [PAD] row is overwritten by a real checkpoint's tied head.
        llm.resize_token_embeddings(len(self.processor), mean_resizing=False)
        return llm

    def _wrap_lora(self, llm):
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(task_type=TaskType.CAUSAL_LM, inference_mode=True, r=self.options.lora_rank,
                            lora_alpha=self.options.lora_alpha, lora_dropout=0.0)
        return get_peft_model(llm, config)

    def _read_ckpt(self) -> dict[str, Any]:
        import torch

        path = self.path_of("ckpt")
        if path is None:
            return {}
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{self.where()}: `ckpt` = {path} cannot be read as a SALMONN checkpoint "
                             f"({type(err).__name__}: {err})") from None
        if not isinstance(checkpoint, dict) or "model" not in checkpoint:
            raise ValueError(f"{self.where()}: `ckpt` = {path} holds no 'model' state dict "
                             f"(keys: {sorted(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__})")
        return checkpoint["model"]

    def load(self, device: str) -> None:
        import torch
        from transformers import WhisperModel

        from candidates.models.beats import load_beats
        from candidates.models.salmonn_original import SalmonnOriginal

        if self.processor is None:
            self.preload()
        dtype = self._dtype(device)
        o = self.options
        whisper = WhisperModel.from_pretrained(self.path_of("whisper_path"), local_files_only=True, dtype=dtype)
        encoder = whisper.encoder
        del whisper
        beats, beats_unknown = (None, [])
        beats_path = self.path_of("beats_path")
        if beats_path is not None:
            beats, beats_unknown = load_beats(beats_path)
        state = self._read_ckpt()
        if o.speech_llama_proj_model:
            state = {**torch.load(self.path_of("speech_llama_proj_model"), map_location="cpu",
                                  weights_only=True)["model"], **state}
        merge_then_quantize = self.merge_lora and any(s.op in ("nf4", "int8") for s in self.steps)
        llm = self._load_llm(device, dtype, quantize=not merge_then_quantize)
        if self.lora_on():
            llm = self._wrap_lora(llm)
        model = SalmonnOriginal(encoder, beats, llm.config.hidden_size, o.num_speech_query_token,
                                o.second_per_window, o.second_stride)
        model.llama_model = llm
        report = self._load_state(model, state)
        quantized = getattr(self.generator(model), "is_quantized", False)
        if not quantized:
            model.to(device=device, dtype=dtype)  # before a merge: the LoRA is added in the compute dtype
        applied = [{"step": s.text, "at": "load"} for s in self.steps if s.op in ("nf4", "int8")
                   and not merge_then_quantize]
        if self.merge_lora:
            model.llama_model = model.llama_model.merge_and_unload()
            applied.append({"step": "lora-merge:llm", "note": "LoRA merged into the LLM weights before quantization"})
            if merge_then_quantize:
                model.llama_model = self._requantize(model.llama_model, device, dtype)
                applied.append({"step": next(s.text for s in self.steps if s.op in ("nf4", "int8")),
                                "at": "load", "after": "lora-merge"})
        if model.beats is None:
            self.parts = {k: v for k, v in self.parts.items() if k != "beats"}
        if quantized or merge_then_quantize:  # a bitsandbytes LLM is already placed and cannot be cast
            for name in ("speech_encoder", "beats", "ln_speech", "ln_audio", "speech_Qformer", "speech_llama_proj"):
                if getattr(model, name, None) is not None:
                    getattr(model, name).to(device=device, dtype=dtype)
            model.speech_query_tokens.data = model.speech_query_tokens.data.to(device=device, dtype=dtype)
        model.eval()
        self.model, self.device, self.dtype = model, device, dtype
        # prune / int8-dynamic on the llm reach the causal LM itself (inside peft's wrapper when kept apart).
        if self.lora_on() and not self.merge_lora:
            self.parts = {**self.parts, "llm": "llama_model.base_model.model"}
        self._check_parts()
        self._cache_arg = "past_key_values"
        self.load_report = {**report, "beats_cfg_unknown": beats_unknown, "lora": self.lora_on(),
                            "lora_kept_apart": self.lora_on() and not self.merge_lora}
        post = [s for s in self.steps if s.op not in ("lora-merge", "nf4", "int8")]  # dtypes: recorded as at load
        self.applied = applied + recipes.apply(self.model, post, self.parts, self.hidden_states)

    def _requantize(self, llm, device: str, dtype):
        """bitsandbytes quantizes while loading: the merged LLM is saved to a temporary folder and
        loaded again with the quantization config (merge before quantization, as asked)."""
        import tempfile

        from transformers import AutoModelForCausalLM

        from harness.paths import cache_dir

        bnb = next(s for s in self.steps if s.op in ("nf4", "int8"))
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            llm.save_pretrained(tmp)
            del llm
            from transformers import BitsAndBytesConfig

            config = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                                         llm_int8_skip_modules=["lm_head"]) if bnb.op == "nf4"
                      else BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"]))
            return AutoModelForCausalLM.from_pretrained(tmp, dtype=dtype, quantization_config=config,
                                                        device_map=device, local_files_only=True)

    def _load_state(self, model, state: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint loaded by name (strict=False, as the original); what it did not fit is
        explained or named."""
        import torch

        # Names the original has and this implementation does not build, with why they are dropped.
        explained = {"speech_Qformer.bert.embeddings.position_ids":
                     "the Q-Former's position-id buffer (its position embeddings are deleted in the original)"}
        own = model.state_dict()
        loadable, shape_errors = {}, []
        for key, value in state.items():
            if key in own:
                if tuple(own[key].shape) != tuple(value.shape):
                    shape_errors.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
                else:
                    loadable[key] = value
        if shape_errors:
            raise ValueError(f"{self.where()}: `ckpt` tensors do not fit the model built from the config: "
                             + "; ".join(shape_errors[:5]) + " (check lora_rank, num_speech_query_token, the LLM and "
                             "Whisper paths)")
        quant = any(s.op in ("nf4", "int8") for s in self.steps) and not self.merge_lora
        with torch.no_grad():
            result = model.load_state_dict(loadable, strict=False, assign=False) if not quant else \
                self._load_into_quantized(model, loadable)
        del result
        ignored = {k: explained[k] for k in state if k not in own and k in explained}
        unexpected = sorted(k for k in state if k not in own and k not in explained)
        if unexpected:
            print(f"warning: {self.where()}: `ckpt` has {len(unexpected)} tensor(s) this model does not have, not "
                  f"loaded: {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}", file=sys.stderr)
        trained = ("ln_speech", "ln_audio", "speech_Qformer", "speech_query_tokens", "speech_llama_proj", "lora_")
        missing = sorted(k for k in own if any(t in k for t in trained) and k not in state
                         and not (k.startswith("ln_audio") and model.beats is None))
        if state and missing:
            print(f"warning: {self.where()}: `ckpt` lacks {len(missing)} trained tensor(s), left at their "
                  f"initial values: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}", file=sys.stderr)
        return {"ckpt_tensors": len(state), "ckpt_loaded": len(loadable), "ckpt_ignored": ignored,
                "ckpt_unexpected": unexpected, "ckpt_missing_trained": missing}

    @staticmethod
    def _load_into_quantized(model, loadable: dict[str, Any]):
        """bitsandbytes LLM: only the full-precision tensors the checkpoint carries (LoRA, head,
        adapters) are copied; a quantized weight is never in a SALMONN checkpoint."""
        params = dict(model.named_parameters())
        params.update(dict(model.named_buffers()))
        for key, value in loadable.items():
            target = params.get(key)
            if target is not None and target.dtype.is_floating_point:
                target.data.copy_(value.to(target.dtype))
        return None

    # ------------------------------------------------------------ inputs

    def generator(self, model=None):
        llm = (model or self.model).llama_model
        return llm.base_model.model if self.lora_on() and not self.merge_lora else llm

    def _embed_tokens(self, ids):
        return self.generator().get_input_embeddings()(ids)

    def _prompt_ids(self, instruction: str):
        import torch

        speech = "" if instruction.startswith(SPEECH_PREFIX) else SPEECH_PREFIX
        text = self.options.prompt_template.format(speech + instruction)
        if PLACEHOLDER not in text:
            raise ValueError(f"{self.where()}: prompt_template {self.options.prompt_template!r} lost {PLACEHOLDER}")
        before, after = text.split(PLACEHOLDER, 1)
        tok = self.processor
        ids = [tok(part, add_special_tokens=False).input_ids for part in (before, after)]
        return [torch.tensor([i], device=self.device) for i in ids]

    def speech_embeds(self, audio) -> Any:
        """(1, 88, hidden) speech tokens of one 16 kHz clip (numpy, float32 or float64)."""
        import torch

        spectrogram = self.features(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        wav = torch.from_numpy(audio).unsqueeze(0).to(self.device) if self.model.beats is not None else None
        with torch.inference_mode():
            return self.model.encode_speech(spectrogram.to(self.device, self.dtype), wav)

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        import torch

        if len(requests) != 1:
            rows = [self.model_inputs([r]) for r in requests]
            width = max(r["inputs_embeds"].shape[1] for r in rows)
            embeds = rows[0]["inputs_embeds"].new_zeros((len(rows), width, rows[0]["inputs_embeds"].shape[-1]))
            mask = torch.zeros((len(rows), width), dtype=torch.long, device=embeds.device)
            for i, r in enumerate(rows):  # left padding, hidden by the mask
                n = r["inputs_embeds"].shape[1]
                embeds[i, width - n:], mask[i, width - n:] = r["inputs_embeds"][0], 1
            return {"inputs_embeds": embeds, "attention_mask": mask}
        request = requests[0]
        speech = self.speech_embeds(request.audio)
        before, after = self._prompt_ids(request.prompt)
        bos = torch.tensor([[self.processor.bos_token_id]], device=self.device)
        embeds = torch.cat([self._embed_tokens(bos), self._embed_tokens(before), speech.to(self.dtype),
                            self._embed_tokens(after)], dim=1)
        return {"inputs_embeds": embeds, "attention_mask": torch.ones(embeds.shape[:2], dtype=torch.long,
                                                                      device=self.device)}

    # ------------------------------------------------------------ generation

    def generate_kwargs(self) -> dict[str, Any]:
        g = self.generate_config()
        eos = self.generator().generation_config.eos_token_id
        if eos is None:
            eos = self.generator().config.eos_token_id
        first = eos[0] if isinstance(eos, (list, tuple)) else eos
        sampling_only = () if g["do_sample"] else ("temperature", "top_p")  # no effect then; transformers warns
        return {"pad_token_id": first,
                **{k: g[k] for k in GENERATE_DEFAULTS if k != "max_new_tokens" and k not in sampling_only}}

    def token_budget(self, request: Request) -> int:
        return int(self.options.generate.get("max_new_tokens", request.max_new_tokens))

    def decode(self, ids) -> str:
        """As the organisers' evaluator: decoded with special tokens, cut at end_sym, lower-cased."""
        text = self.processor.decode(ids)
        return text.split(self.end_sym())[0].lower()

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        import torch
        from transformers import LogitsProcessorList

        marker = timing_processor(on_token)
        with torch.inference_mode():
            inputs = self.inputs([request])
            output = self.generator().generate(**inputs, max_new_tokens=self.token_budget(request),
                                               logits_processor=LogitsProcessorList([marker]),
                                               **self.generate_kwargs())
        sequences = getattr(output, "sequences", output)
        ids = sequences[0].tolist()
        return Generation(text=self.decode(ids), n_tokens=marker.steps,
                          info={"decoding": self.decoding(), "decode_steps": marker.steps, "output_tokens": len(ids)})

    def _generate_together(self, requests: list[Request]) -> list[Generation]:
        return [self.generate(r, lambda count=1: None) for r in requests]

    def random_weights(self) -> bool:
        return self.uses_tiny()

    def run_info(self) -> dict[str, Any]:
        g = self.generate_config()
        return {**({"weights": "random"} if self.uses_tiny() else {}), "decoding": self.decoding(), "generate": g, "end_sym": self.end_sym(),
                "timing": "one token callback per decoding step (a logits processor), so TTFT/TPOT are per step "
                          "in every decoding mode; n_tokens counts steps",
                "prompt_template": self.options.prompt_template, "load": self.load_report,
                "source_config": self.options.source_config}

    # ------------------------------------------------------------ nota2025 stepped decoder

    def prefill(self, request: Request) -> dict:
        import torch

        with torch.inference_mode():
            out = self.generator()(**self.inputs([request]), use_cache=True)
        return {"cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    def decode_step(self, state: dict) -> dict:
        import torch

        with torch.inference_mode():
            out = self.generator()(input_ids=state["token"], past_key_values=state["cache"], use_cache=True)
        return {**state, "cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    # ------------------------------------------------------------ weights

    def decoder_weight_bytes(self) -> int:
        from harness.measure.memory import tensor_bytes

        return tensor_bytes(self.model.llama_model)

    def export(self, out_dir: Path, provenance: dict[str, Any]) -> dict[str, Any]:
        from candidates.families.salmonn_export import export_original

        return export_original(self, Path(out_dir), provenance)
