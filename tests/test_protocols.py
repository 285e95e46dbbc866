"""The nota2025 measurement protocol: the organiser's formulas, checked against hand-computed values."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench import cli
from harness.candidate import Candidate
from harness.measure.nota2025 import measure_nota2025
from harness.score import metrics
from harness.score.nota2025 import nota_caption, nota_wer


class ScriptedDecoder(Candidate):
    """prefill takes 0.2 s, a decode step 0.03 s on the fake clock; memory grows per iteration."""

    tasks = frozenset({"asr"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.prompts = []

    def load(self, device):
        pass

    def generate(self, request, on_token):
        raise AssertionError("nota2025 never calls generate")

    def stepped_decoder(self):
        return self

    def prefill(self, request):
        self.prompts.append((request.prompt, len(request.audio)))
        self.clock.now += 0.2
        return {}

    def decode_step(self, state):
        self.clock.now += 0.03
        return state


class Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_nota2025_efficiency_formulas():
    clock = Clock()
    decoder = ScriptedDecoder(clock)
    peaks = iter([100.0, 110.0, 120.0])
    out = measure_nota2025(decoder, "Recognize.", sync=None, peak_mb=lambda: next(peaks), clock=clock, iterations=3)
    assert out["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert out["tpot_ms"]["mean"] == pytest.approx(30.0)
    assert out["latency_ms"] == pytest.approx(230.0)
    assert out["peak_memory_mb"] == pytest.approx(110.0)  # mean of 100, 110, 120
    # 10 s of noise at 16 kHz with the ASR prompt, every iteration
    assert decoder.prompts == [("Recognize.", 160_000)] * 3


def test_nota2025_needs_prefill_and_decode_step():
    class Whole(Candidate):
        def load(self, device): ...

        def generate(self, request, on_token): ...

    out = measure_nota2025(Whole(), "x", None, lambda: 0.0)
    assert out["supported"] is False and "prefill" in out["reason"]


def test_nota_wer_tokenizes_with_13a_after_normalizing():
    # Normalized: "it is 25% done" vs "it is 25 done". The 13a tokenizer splits "25%" into
    # "25 %", so the missing "%" is 1 deletion over 5 tokens (0.2), where the default
    # scorer sees one substitution over 4 words (0.25).
    assert nota_wer(["It's 25% done."], ["it is 25 done"])["wer"] == pytest.approx(0.2)
    assert metrics.wer_metrics(["It's 25% done."], ["it is 25 done"])["wer"] == pytest.approx(0.25)


def test_nota_spider_is_cider_d_against_the_first_reference_only():
    cands = ["a dog barks loudly", "wind blows hard"]
    refs = [["a dog barks loudly", "a cat meows"], ["wind blows hard", "rain falls"]]
    nota, notices = nota_caption(cands, refs)
    first_only, _ = metrics.caption_metrics(cands, [r[:1] for r in refs])
    all_refs, _ = metrics.caption_metrics(cands, refs)
    assert nota["spider"] == nota["cider_d"] == pytest.approx(first_only["cider_d"])
    assert nota["cider_d"] != pytest.approx(all_refs["cider_d"])
    assert "one reference" in notices[0]


def test_leaderboard_never_ranks_profiles_together(tmp_path):
    def write(run_id, candidate, profile, latency):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "run.json").write_text(json.dumps({
            "schema_version": 1, "run_id": run_id, "candidate": candidate, "status": "ok", "protocol": profile,
            "created_at": "2026-11-25T00:00:00+00:00", "environment": {}, "suites": {},
            "efficiency": {"peak_memory_mb": 1.0, "latency_ms": latency},
        }))

    write("r1", "a", "default", 10.0)
    write("r2", "b", "default", 20.0)
    write("r3", "a", "nota2025", 5.0)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path), "--format", "json"])
    rows = json.loads(out.output)
    by_profile = {}
    for row in rows:
        by_profile.setdefault(row["protocol"], []).append((row["candidate"], row["rank"]))
    assert by_profile == {"default": [("a", 1), ("b", 2)], "nota2025": [("a", 1)]}
    table = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path)]).output
    assert table.index("protocol: default") < table.index("protocol: nota2025")
