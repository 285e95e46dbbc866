"""Failures count: every planned sample is scored, a missing prediction as an empty one.

A throw-away distribution registers two candidates that answer "hello world": `flaky` raises
on every sample whose id starts with "boom", `steady` never does. Real `bench.py run`s score
them on 30 ASR samples; the expected WER is worked out here from the references.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench import cli
from harness.data.errors import Problem
from harness.run.plan import SuitePlan
from harness.score.scoring import run_coverage, score_suite
from harness.suites import SUITES, Suite
from harness.types import Sample
from tests.conftest import REPO, bench, install_distribution, run_record_path

SPEECH = sorted((REPO / "harness" / "data" / "demo_data" / "speech").iterdir())

PLUGIN = '''
from harness.candidate import Candidate
from harness.types import Generation


class Steady(Candidate):
    name = "steady"
    tasks = frozenset({"asr"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def generate(self, request, on_token):
        on_token()
        on_token()
        return Generation(text="hello world")


class Flaky(Steady):
    name = "flaky"

    def generate(self, request, on_token):
        if request.sample_id.startswith("boom"):
            raise RuntimeError("scripted failure")
        return super().generate(request, on_token)
'''

# 30 ASR samples: 22 say "hello world" (0 errors), 5 say "hello big world" (1 deletion each),
# and 3 make `flaky` raise; their references are all deletions when they count.
OK_REFS = ["hello world"] * 22 + ["hello big world"] * 5
FAILING = {"boom1": "alpha beta gamma", "boom2": "red green blue yellow", "boom3": "cat"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return install_distribution(
        tmp_path_factory.mktemp("cover_site"), "lbplugin_cover", PLUGIN,
        "[lalm_bench.candidates]\nsteady = lbplugin_cover:Steady\nflaky = lbplugin_cover:Flaky\n",
    )


@pytest.fixture(scope="module")
def results(site, tmp_path_factory):
    """Both candidates run on the same 30 samples; returns (results folder, {candidate: record})."""
    folder = tmp_path_factory.mktemp("cover")
    entries = [{"testset_id": f"ok{i:02d}", "path": str(SPEECH[i % len(SPEECH)]), "task": "asr", "text": ref}
               for i, ref in enumerate(OK_REFS)]
    entries[10:10] = [{"testset_id": i, "path": str(SPEECH[0]), "task": "asr", "text": ref} for i, ref in FAILING.items()]
    data = folder / "data.json"
    data.write_text(json.dumps({"annotation": entries}))
    records = {}
    for name in ("steady", "flaky"):
        out = bench("run", "-c", name, "--data", str(data), "--warmup", "0", "--results", str(folder / "runs"),
                    env=site)
        assert out.returncode == 0, out.stdout + out.stderr
        records[name] = json.loads(run_record_path(out.stdout).read_text())
    return folder / "runs", records


def test_three_failed_samples_are_scored_as_deletions(results):
    _, records = results
    suite = records["flaky"]["suites"]["asr"]
    # By hand: 22 x 2 + 5 x 3 words predicted; the failed ones hold 3 + 4 + 1 words.
    words_ok = 22 * 2 + 5 * 3
    words_failed = sum(len(ref.split()) for ref in FAILING.values())
    assert (words_ok, words_failed) == (59, 8)
    assert suite["metrics"]["wer"] == pytest.approx((5 + 8) / (59 + 8))  # 13 / 67
    assert suite["metrics"]["deletions"] == 13 and suite["metrics"]["n_ref_words"] == 67
    assert suite["metrics_scored_only"]["wer"] == pytest.approx(5 / 59)
    assert suite["coverage"] == pytest.approx(27 / 30) and records["flaky"]["coverage"] == pytest.approx(0.9)
    assert suite["n_samples"] == 30 and suite["n_scored"] == 27
    assert sorted(f["sample_id"] for f in suite["failures"]) == sorted(FAILING)
    lo, hi = suite["metrics_ci"]["wer"]  # the interval is over all planned samples too
    assert lo <= 13 / 67 <= hi and hi > 5 / 59
    assert any("scores them as empty predictions" in n for n in suite["notices"])
    # The candidate that fails nothing says "hello world" to those 3 too: 2 substitutions and
    # 1 deletion, 2 + 2, and 1 substitution + 1 insertion.
    steady = records["steady"]["suites"]["asr"]
    assert steady["coverage"] == 1.0 and records["steady"]["coverage"] == 1.0
    assert steady["metrics"]["wer"] == pytest.approx((5 + 3 + 4 + 2) / 67)
    assert steady["metrics_scored_only"] == steady["metrics"]


def test_leaderboard_shows_coverage_and_min_coverage_drops_the_run(results):
    runs, records = results
    table = CliRunner().invoke(cli, ["leaderboard", "--results", str(runs)])
    assert table.exit_code == 0, table.output
    assert "Coverage" in table.output and "90.0%" in table.output
    assert "flaky *" in table.output and "steady *" not in table.output
    assert "* Coverage under 100%" in table.output

    data = json.loads(CliRunner().invoke(cli, ["leaderboard", "--results", str(runs), "--format", "json"]).output)
    assert {row["candidate"]: row["coverage"] for row in data} == {"steady": 1.0, "flaky": pytest.approx(0.9)}

    strict = CliRunner().invoke(cli, ["leaderboard", "--results", str(runs), "--min-coverage", "1"])
    assert strict.exit_code == 0, strict.output
    assert "flaky *" not in strict.output and "steady" in strict.output
    line = next(line for line in strict.output.splitlines() if line.startswith("left out:"))
    assert records["flaky"]["run_id"] in line and "'flaky'" in line and "90.0%" in line and "--min-coverage 1" in line


def test_profile_min_coverage_drops_the_run(results, tmp_path):
    runs, records = results
    profile = tmp_path / "strict.toml"
    profile.write_text("min_coverage = 0.95\n[weights]\nwer = 1\n")
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(runs), "--weights", str(profile)])
    assert out.exit_code == 0, out.output
    assert "min_coverage = 0.95" in out.output and records["flaky"]["run_id"] in out.output
    assert "flaky *" not in out.output


# ---------------------------------------------------------------- score_suite on hand-made plans


def _plan(suite: Suite, samples: dict[str, list[str]], skipped: dict[str, list[str]] | None = None) -> SuitePlan:
    return SuitePlan(
        suite, "hand",
        [Sample(sid, suite.name, "unused.wav", refs) for sid, refs in samples.items()],
        [Problem(f"entry {sid}", "audio file not found", sid, suite.name, refs) for sid, refs in (skipped or {}).items()],
    )


def _prediction(sid: str, task: str, text: str | None, error: str | None = None) -> dict:
    return {"sample_id": sid, "task": task, "prediction": text, "error": error,
            "ttft_ms": 1.0, "tpot_ms": 1.0, "e2e_ms": 2.0, "n_tokens": 2, "audio_s": 1.0}


def test_failed_skipped_and_not_run_samples_all_count():
    plan = _plan(SUITES["asr"], {"a": ["the cat sat"], "b": ["on the mat"], "c": ["a red hat"], "d": ["big dogs"]},
                 skipped={"e": ["five more words are here"], "f": []})
    predictions = [_prediction("a", "asr", "the cat sat"), _prediction("b", "asr", None, "RuntimeError: x")]
    block = score_suite(plan, predictions)  # "c" and "d" never ran
    # Errors: b 3 + c 3 + d 2 + e 5 deletions = 13 over 3 + 3 + 3 + 2 + 5 = 16 words; "f" has no reference.
    assert block["metrics"]["wer"] == pytest.approx(13 / 16)
    assert block["metrics_scored_only"]["wer"] == 0.0
    assert block["coverage"] == pytest.approx(1 / 6) and block["n_samples"] == 6
    assert any("no known reference" in n for n in block["notices"])
    assert block["not_run"] == ["c", "d"]
    assert run_coverage({"asr": block, "aac": {"coverage": 0.5}}) == pytest.approx(1 / 6)


def test_nota2025_protocol_scores_a_missing_row_as_empty():
    plan = _plan(SUITES["asr"], {"a": ["it is done"], "b": ["see you soon"]})
    block = score_suite(plan, [_prediction("a", "asr", "it is done")], protocol="nota2025")
    assert block["metrics"]["wer"] == pytest.approx(3 / 6)
    assert block["metrics_scored_only"]["wer"] == 0.0


def test_plugin_suite_gets_its_metric_of_an_empty_answer():
    def exact(predictions, references):
        return {"accuracy": sum(p == r[0] for p, r in zip(predictions, references, strict=True)) / len(predictions)}

    suite = Suite("beeps", "test", "How many?", 2, "accuracy", True, metric=exact)
    plan = _plan(suite, {"a": ["2"], "b": ["1"], "c": ["4"]})
    block = score_suite(plan, [_prediction("a", "beeps", "2"), _prediction("b", "beeps", "3")])
    # "c" did not run: the metric is given "" for it, which is not "4".
    assert block["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert block["metrics_scored_only"]["accuracy"] == pytest.approx(1 / 2)
