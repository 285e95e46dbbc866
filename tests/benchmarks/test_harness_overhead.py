"""The harness's timing path costs (almost) nothing: same model, same request, measured by a
bare loop (plain `generate` with a minimal streamer) and through the harness, interleaved."""

from __future__ import annotations

import statistics
import time

import torch
from transformers.generation.streamers import BaseStreamer

from harness.measure.timing import TokenTimer
from tests.benchmarks.conftest import loaded


class StampStreamer(BaseStreamer):
    """The least a streamer can do: note the time of each new token."""

    def __init__(self):
        self.stamps: list[float] = []
        self.prompt_seen = False

    def put(self, value):
        if self.prompt_seen:
            self.stamps.append(time.perf_counter())
        self.prompt_seen = True

    def end(self):
        pass


def bare_request(candidate, request) -> tuple[float, float]:
    model, tok = candidate.model, candidate.tokenizer
    streamer = StampStreamer()
    start = time.perf_counter()
    feats = candidate.features(request.audio, sampling_rate=16000, return_tensors="pt").input_features
    prefix, suffix = candidate._prompt_tensors(request.prompt)
    with torch.inference_mode():
        embeds = model.build_inputs_embeds(feats, prefix, suffix)
        model.llm.generate(
            inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
            max_new_tokens=request.max_new_tokens, do_sample=False,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, streamer=streamer,
        )
    s = streamer.stamps
    return s[0] - start, (s[-1] - s[0]) / (len(s) - 1)


def harness_request(candidate, request) -> tuple[float, float]:
    timer = TokenTimer()
    timer.start()
    generation = candidate.generate(request, timer.on_token)
    timing = timer.finish(generation.n_tokens)
    return timing.ttft_s, timing.tpot_s


def test_harness_overhead_within_5_percent(request, demo_request):
    candidate = loaded("baseline")
    disabled = request.config.getoption("benchmark_disable", False)
    rounds = 1 if disabled else 15
    bare, harness = [], []
    bare_request(candidate, demo_request)  # warm-up
    for i in range(rounds):  # interleaved, order alternating, so drifts of the machine hit both alike
        pair = [(bare, bare_request), (harness, harness_request)]
        for out, measure in pair if i % 2 == 0 else pair[::-1]:
            out.append(measure(candidate, demo_request))
    ratios = {
        name: statistics.median(h[i] for h in harness) / statistics.median(b[i] for b in bare)
        for i, name in enumerate(("ttft", "tpot"))
    }
    print(f"\nharness / bare medians over {rounds} interleaved rounds: "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    if not disabled:
        assert all(r <= 1.05 for r in ratios.values()), ratios  # overhead: slower by at most 5%
