"""Family `hf-audiolm`: transformers-native audio LLMs driven through `AutoProcessor` and the
model's chat template, starting with Qwen2-Audio.

Options (candidate TOML `[options]`):
- `model_path`: a local checkpoint folder (default: a tiny random Qwen2-Audio built on first use);
- `model_class`: the transformers class (default `Qwen2AudioForConditionalGeneration`);
- `parts`: module paths of `llm`, `encoder`, `adapter` for recipes (defaults fit Qwen2-Audio);
- `keep_full_precision`: modules bitsandbytes steps leave alone (default `["lm_head"]`);
- `system_prompt`: an optional system turn;
- `trust_remote_code`, `allow_pickle`: both off unless set (the run record says which).
Another transformers audio LLM with a processor and a chat template is a TOML file naming its
class and parts, not new code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from candidates import recipes
from candidates.salmonn import check_checkpoint
from harness.candidate import Candidate
from harness.memory import tensor_bytes
from harness.registry import CandidateSpec
from harness.streaming import transformers_streamer
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

QWEN2_AUDIO_PARTS = {"llm": "model.language_model", "encoder": "model.audio_tower", "adapter": "model.multi_modal_projector"}


@dataclass(frozen=True)
class HfAudioLMOptions:
    model_path: str | None = None  # a local checkpoint folder; default: the tiny random Qwen2-Audio
    model_class: str = "Qwen2AudioForConditionalGeneration"  # a transformers class name
    parts: dict[str, str] = field(default_factory=lambda: dict(QWEN2_AUDIO_PARTS))  # recipe part -> module path
    keep_full_precision: list[str] = field(default_factory=lambda: ["lm_head"])  # bitsandbytes leaves these
    system_prompt: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False


class HfAudioLMCandidate(recipes.RecipeHooks, Candidate):
    """A transformers audio LLM (Qwen2-Audio by default) through its processor and chat template."""

    tasks = frozenset({"asr", "aac"})
    Options = HfAudioLMOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        options = self.options
        self.model_path = options.model_path
        self.model_class = options.model_class
        self.parts = dict(options.parts)
        self.keep = list(options.keep_full_precision)
        self.system_prompt = options.system_prompt
        self.trust_remote_code = options.trust_remote_code
        self.allow_pickle = options.allow_pickle
        self.steps = recipes.parse(spec.recipe, self.parts)
        self.calibration: list[Request] = []
        self.applied: list[dict] = []
        self._chat_texts: dict[str, str] = {}

    def prepare(self) -> None:
        if not self.model_path:
            from candidates.qwen2_audio_tiny import ensure_tiny

            ensure_tiny()

    def load(self, device: str) -> None:
        import transformers

        from candidates.qwen2_audio_tiny import default_path

        path = Path(self.model_path) if self.model_path else default_path()
        check_checkpoint(path, self.allow_pickle)
        kwargs = recipes.load_kwargs(self.steps, self.parts, device, keep=self.keep)
        common = {"local_files_only": True, "trust_remote_code": self.trust_remote_code}
        self.processor = transformers.AutoProcessor.from_pretrained(path, **common)
        model_class = getattr(transformers, self.model_class)
        self.model = model_class.from_pretrained(path, use_safetensors=not self.allow_pickle, **common, **kwargs)
        if "quantization_config" not in kwargs:
            self.model.to(device)
        self.model.eval()
        self.device, self.dtype = device, kwargs["dtype"]
        self.applied = recipes.apply(self.model, self.steps, self.parts, self._hidden_states)

    def _hidden_states(self, _part) -> list:
        import torch

        with torch.inference_mode():
            return [self.model(**self._inputs(r), output_hidden_states=True).hidden_states for r in self.calibration]

    def weight_bytes(self) -> int:
        return tensor_bytes(self.model)

    def weight_bytes_by_part(self) -> dict[str, int]:
        return recipes.bytes_by_part(self.model, self.parts)

    def decoder_weight_bytes(self) -> int:
        """Read per token: the LLM without its embedding table, plus the LM head."""
        llm = recipes.module_at(self.model, self.parts["llm"])
        return tensor_bytes(llm) - tensor_bytes(llm.get_input_embeddings()) + tensor_bytes(self.model.lm_head)

    def _chat_text(self, prompt: str) -> str:
        """The chat template rendered around one audio placeholder; cached since suites reuse one prompt
        (the processor still expands the placeholder to each clip's length)."""
        if prompt not in self._chat_texts:
            content = [{"type": "audio", "audio": "clip"}, {"type": "text", "text": prompt}]
            conversation = [{"role": "user", "content": content}]
            if self.system_prompt:
                conversation.insert(0, {"role": "system", "content": self.system_prompt})
            self._chat_texts[prompt] = self.processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
        return self._chat_texts[prompt]

    def _inputs(self, request: Request):
        """Chat template + processor: features, audio placeholders expanded, token ids."""
        text = self._chat_text(request.prompt)
        inputs = self.processor(text=text, audio=[request.audio], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = inputs.to(self.device)
        inputs["input_features"] = inputs["input_features"].to(self.dtype)
        return inputs

    def stepped_decoder(self) -> HfAudioLMCandidate:
        return self

    def prefill(self, request: Request) -> dict:
        import torch

        with torch.inference_mode():
            out = self.model(**self._inputs(request), use_cache=True)
        return {"cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    def decode_step(self, state: dict) -> dict:
        import torch

        with torch.inference_mode():
            out = self.model(input_ids=state["token"], past_key_values=state["cache"], use_cache=True)
        return {"cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        import torch

        window_s = self.processor.feature_extractor.chunk_length
        with torch.inference_mode():
            inputs = self._inputs(request)
            out = self.model.generate(
                **inputs,
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                streamer=transformers_streamer(on_token),
            )
        new = out[0, inputs["input_ids"].shape[1]:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
        info = {"audio_truncated_to_s": window_s} if len(request.audio) / SAMPLE_RATE > window_s else {}
        return Generation(text=text, n_tokens=int(new.shape[0]), info=info)
