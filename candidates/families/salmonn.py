"""Family `salmonn`: the SALMONN-style composite, with dtype and bitsandbytes recipes.

Options (candidate TOML `[options]`): `model_path` — a folder saved by this family
(default: the built-in tiny random checkpoint, created on first use); `allow_pickle` — accept a
`.bin`/`.pt` checkpoint (unpickling runs code: off by default, safetensors only); `prompts` — the
model's own prompts by task (`run --prompts model`).
Recipe: any steps of candidates/recipes/__init__.py on the parts `llm`, `encoder`, `adapter`
(e.g. `["nf4:llm"]`, `["int8-dynamic:llm"]`, `["prune:llm:drop=auto:2"]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from candidates.families.transformers_base import TransformersCandidate
from harness.types import SAMPLE_RATE, Request

# Module paths of the parts recipe steps can target (see candidates/recipes/__init__.py).
PARTS = {"llm": "llm", "encoder": "audio_encoder", "adapter": "window_qformer"}
# Kept in full precision by bitsandbytes steps whatever the part: tiny but accuracy-critical.
KEEP_FULL_PRECISION = ("lm_head", "speech_projector", "query_tokens")


class SalmonnCandidate(TransformersCandidate):
    """SALMONN-style model: Whisper encoder + window Q-Former + projector + Llama LLM."""

    tasks = frozenset({"asr", "aac", "mcq", "qa"})  # an instruction-following LLM: it can be asked questions
    family = "salmonn"
    PARTS = PARTS
    KEEP_FULL_PRECISION = KEEP_FULL_PRECISION
    MODEL_CLASS = "candidates.models.salmonn_model:SalmonnForConditionalGeneration"
    # SALMONN's own test prompts (github.com/bytedance/SALMONN, prompts/test_prompt.json).
    MODEL_PROMPTS = {"asr": "Recognize the speech and give me the transcription.", "aac": "Please describe the audio."}

    def __init__(self, spec):
        super().__init__(spec)
        self._prompt_ids: dict[str, tuple] = {}

    def default_is_random(self) -> bool:
        return True

    def default_checkpoint(self) -> Path:
        from candidates.checkpoints.salmonn_tiny import ensure_tiny

        return ensure_tiny()

    def load_processor(self, path: Path, common: dict[str, Any]) -> Any:
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        self.features = WhisperFeatureExtractor.from_pretrained(path, **common)
        return AutoTokenizer.from_pretrained(path, **common)

    def audio_window_s(self) -> float:
        return float(self.features.chunk_length)  # the Whisper encoder's fixed 30 s input

    def generator(self):
        return self.model.llm

    def generate_kwargs(self) -> dict[str, Any]:
        return {"eos_token_id": self.tokenizer.eos_token_id, "pad_token_id": self.tokenizer.pad_token_id}

    def _prompt_tensors(self, prompt: str):
        """Token ids around the audio placeholder; cached since suites reuse one prompt (bounded:
        mcq and qa ask each sample its own question)."""
        if prompt not in self._prompt_ids:
            import torch

            if len(self._prompt_ids) >= 64:
                self._prompt_ids.pop(next(iter(self._prompt_ids)))  # the oldest

            from candidates.models.salmonn_model import AUDIO_PLACEHOLDER, PROMPT_TEMPLATE

            before, after = PROMPT_TEMPLATE.format(prompt).split(AUDIO_PLACEHOLDER)
            tok = self.tokenizer
            prefix = [tok.bos_token_id] + tok(before, add_special_tokens=False).input_ids
            suffix = tok(after, add_special_tokens=False).input_ids
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

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        """Embeddings of each request, left-padded with zeros that the attention mask hides."""
        import torch

        embeds = [self._embed(r)[0] for r in requests]
        width = max(e.shape[0] for e in embeds)
        batch = embeds[0].new_zeros((len(embeds), width, embeds[0].shape[-1]))
        mask = torch.zeros((len(embeds), width), dtype=torch.long, device=batch.device)
        for row, e in enumerate(embeds):
            batch[row, width - e.shape[0]:] = e
            mask[row, width - e.shape[0]:] = 1
        return {"inputs_embeds": batch, "attention_mask": mask}
