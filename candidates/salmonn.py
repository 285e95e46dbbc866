"""Family `salmonn`: the SALMONN-style composite, with dtype and bitsandbytes recipes.

Options (candidate TOML `[options]`): `model_path` — a folder saved by this family
(default: the built-in tiny random checkpoint, created on first use); `allow_pickle` — accept a
`.bin`/`.pt` checkpoint (unpickling runs code: off by default, safetensors only).
Recipe: any steps of candidates/recipes.py on the parts `llm`, `encoder`, `adapter`
(e.g. `["nf4:llm"]`, `["int8-dynamic:llm"]`, `["prune:llm:drop=auto:2"]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from candidates import recipes
from harness.candidate import Candidate
from harness.memory import tensor_bytes
from harness.registry import CandidateSpec
from harness.streaming import transformers_streamer
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

# Module paths of the parts recipe steps can target (see candidates/recipes.py).
PARTS = {"llm": "llm", "encoder": "audio_encoder", "adapter": "window_qformer"}
# Kept in full precision by bitsandbytes steps whatever the part: tiny but accuracy-critical.
KEEP_FULL_PRECISION = ["lm_head", "speech_projector", "query_tokens"]


def check_checkpoint(path: Path, allow_pickle: bool) -> None:
    """Refuses what would run code on load, before anything is read."""
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"salmonn: no checkpoint at {path} (config.json missing)")
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"})
    if pickles and not allow_pickle:
        raise PermissionError(
            f"salmonn: {path} holds only pickle weights ({', '.join(pickles)}); unpickling runs code, so they are "
            "refused. Convert them to safetensors, or set `allow_pickle = true` under [options] if you trust them."
        )


@dataclass(frozen=True)
class SalmonnOptions:
    model_path: str | None = None  # a folder saved by this family; default: the built-in tiny checkpoint
    allow_pickle: bool = False  # accept .bin/.pt weights (unpickling runs code)


class SalmonnCandidate(recipes.RecipeHooks, Candidate):
    """SALMONN-style model: Whisper encoder + window Q-Former + projector + Llama LLM."""

    tasks = frozenset({"asr", "aac"})
    Options = SalmonnOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        self.steps = recipes.parse(spec.recipe, PARTS)
        self.calibration: list[Request] = []
        self.applied: list[dict] = []
        self.model_path = self.options.model_path
        self.allow_pickle = self.options.allow_pickle
        self.model = None
        self._prompt_ids: dict[str, tuple] = {}

    def prepare(self) -> None:
        """Creates the tiny checkpoint if needed; runs in its own process before measuring."""
        if not self.model_path:
            from candidates.salmonn_tiny import ensure_tiny

            ensure_tiny()

    def load(self, device: str) -> None:
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        from candidates.salmonn_model import SalmonnForConditionalGeneration
        from candidates.salmonn_tiny import default_tiny_path

        path = Path(self.model_path) if self.model_path else default_tiny_path()
        check_checkpoint(path, self.allow_pickle)
        kwargs = recipes.load_kwargs(self.steps, PARTS, device, keep=KEEP_FULL_PRECISION)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.features = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
        self.model = SalmonnForConditionalGeneration.from_pretrained(
            path, local_files_only=True, use_safetensors=not self.allow_pickle, **kwargs
        )
        if "quantization_config" not in kwargs:
            self.model.to(device)
        self.model.eval()
        self.dtype = kwargs["dtype"]
        self.applied = recipes.apply(self.model, self.steps, PARTS, self._hidden_states)

    def _hidden_states(self, llm) -> list:
        import torch

        with torch.inference_mode():
            return [llm(inputs_embeds=self._embed(r), output_hidden_states=True).hidden_states for r in self.calibration]

    def weight_bytes(self) -> int:
        return tensor_bytes(self.model)

    def weight_bytes_by_part(self) -> dict[str, int]:
        return recipes.bytes_by_part(self.model, PARTS)

    def decoder_weight_bytes(self) -> int:
        """Weights read per generated token: the LLM less its embedding table (one row is read)."""
        llm = self.model.llm
        return tensor_bytes(llm) - tensor_bytes(llm.get_input_embeddings())

    def _prompt_tensors(self, prompt: str):
        """Token ids around the audio placeholder; cached since suites reuse one prompt."""
        if prompt not in self._prompt_ids:
            from candidates.salmonn_model import AUDIO_PLACEHOLDER, PROMPT_TEMPLATE

            before, after = PROMPT_TEMPLATE.format(prompt).split(AUDIO_PLACEHOLDER)
            tok = self.tokenizer
            prefix = [tok.bos_token_id] + tok(before, add_special_tokens=False).input_ids
            suffix = tok(after, add_special_tokens=False).input_ids
            import torch

            self._prompt_ids[prompt] = (
                torch.tensor([prefix], device=self.device),
                torch.tensor([suffix], device=self.device),
            )
        return self._prompt_ids[prompt]

    def _embed(self, request: Request):
        """Audio features + encoder + Q-Former + projector + prompt wrapping -> LLM input embeddings."""
        feats = self.features(request.audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        prefix, suffix = self._prompt_tensors(request.prompt)
        return self.model.build_inputs_embeds(feats.to(self.device, self.dtype), prefix, suffix)

    def stepped_decoder(self) -> SalmonnCandidate:
        return self

    def prefill(self, request: Request) -> dict:
        """Audio encoding + prompt wrapping + one prefill forward (the nota2025 TTFT)."""
        import torch

        with torch.inference_mode():
            out = self.model.llm(inputs_embeds=self._embed(request), use_cache=True)
        return {"cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    def decode_step(self, state: dict) -> dict:
        """One greedy decode step with the KV cache (the nota2025 TPOT)."""
        import torch

        with torch.inference_mode():
            out = self.model.llm(input_ids=state["token"], past_key_values=state["cache"], use_cache=True)
        return {"cache": out.past_key_values, "token": out.logits[:, -1:].argmax(-1)}

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        import torch

        window_s = self.features.chunk_length
        audio_s = len(request.audio) / SAMPLE_RATE
        with torch.inference_mode():
            embeds = self._embed(request)
            out = self.model.llm.generate(
                inputs_embeds=embeds,
                attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device),
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                eos_token_id=self.tokenizer.eos_token_id,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=transformers_streamer(on_token),
            )
        info = {"audio_truncated_to_s": window_s} if audio_s > window_s else {}
        text = self.tokenizer.decode(out[0], skip_special_tokens=True).strip()
        return Generation(text=text, n_tokens=int(out.shape[1]), info=info)
