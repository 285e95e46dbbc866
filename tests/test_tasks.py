"""Suites with per-sample questions: mcq (the extraction rule, accuracy) and qa (an LLM judge).

The end-to-end tests run a third-party plugin (a real installed distribution) whose replies are
fixed strings, in real `bench.py run` subprocesses, on MMAU-format data made of real audio
files; qa is judged by tests/scripted_judge_server.py, a real HTTP server on loopback (the only
stand-in: a judge LLM cannot run here).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.data.loaders import detect_format, load_data
from harness.data.questions import check_question, render
from harness.score.judge import DEFAULT_TEMPLATE, JudgeError, load_judge, parse_score
from harness.score.mcq import read_choice
from tests.conftest import bench, install_distribution, run_record_path
from tests.scripted_judge_server import recorded_requests, running

ANIMALS = ["dog", "cat", "bird", "car"]
# (sample id, choices, answer, the plugin's fixed reply, the letter the rule reads, correct)
MCQ_CASES = [
    ("m01", ANIMALS, "cat", "B", "B", True),                                  # a bare capital letter
    ("m02", ANIMALS, "cat", "(b)", "B", True),                                # a letter in parentheses
    ("m03", ANIMALS, "bird", "I think it is a bird chirping.", "C", True),    # a sentence naming an option
    ("m04", ANIMALS, "car", "A car.", "D", True),                             # starts with the article "A"
    ("m05", ANIMALS, "dog", "A cat, I think", "B", False),                    # the article, not the letter A
    ("m06", ANIMALS, "dog", "a", None, False),                                # lower-case, not standalone capital
    ("m07", ANIMALS, "dog", "(A) or (B)", None, False),                       # two letters: ambiguous
    ("m08", ANIMALS, "dog", "", None, False),                                 # empty reply
    ("m09", ["dog", "small dog", "cat"], "small dog", "a small dog", "B", True),  # the longer choice wins
    ("m10", ANIMALS, "dog", "The answer is A", "A", True),                    # after "answer is"
    ("m11", ["dog", "cat"], "dog", "a dog or a cat", None, False),            # two option texts, no letter
    ("m12", ANIMALS, "bird", "answer: c", "C", True),                         # after "answer:"
]
# (sample id, question, reference, the plugin's reply, the judge's reply, the N that counts)
QA_CASES = [
    ("q1", "What colour is the sky?", "Blue.", "The sky is blue", "Matches the reference. Score: 9", 9),
    ("q2", "Which colour is named?", "Green.", "It is green", "Partly right.\nScore: 6", 6),
    ("q3", "Who speaks?", "A woman.", "no idea", "Score: 11", 1),          # out of range: unjudged
    ("q4", "How many beeps?", "Three.", "", "I cannot tell.", 1),             # no "Score: N": unjudged
]

PLUGIN = """
from harness.candidate import Candidate
from harness.types import Generation

REPLIES = {replies!r}


class Fixed(Candidate):
    tasks = frozenset({{"mcq", "qa"}})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        pass

    def generate(self, request, on_token):
        on_token()
        return Generation(text=REPLIES[request.sample_id], n_tokens=1)

    def generate_batch(self, requests):
        # Answers only when asked with the sample's own question, as the single path asks it.
        return [Generation(text=REPLIES[r.sample_id] if r.prompt.startswith("Question") or r.task == "qa" else "?",
                           n_tokens=1) for r in requests]
"""


def _tone(path, seconds=0.3, freq=440.0):
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), 16000)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    replies = {c[0]: c[3] for c in MCQ_CASES} | {c[0]: c[3] for c in QA_CASES}
    return install_distribution(tmp_path_factory.mktemp("tasks_site"), "lbplug_fixed", PLUGIN.format(replies=replies),
                                "[lalm_bench.candidates]\nfixed = lbplug_fixed:Fixed\n")


@pytest.fixture(scope="module")
def mmau(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmau")
    (root / "audio").mkdir()
    entries = []
    for i, (sid, choices, answer, *_rest) in enumerate(MCQ_CASES):
        _tone(root / "audio" / f"{sid}.wav", freq=300 + 50 * i)
        entries.append({"id": sid, "audio_id": f"./audio/{sid}.wav", "question": f"Question {sid}?",
                        "choices": choices, "answer": answer, "task": "sound" if i % 2 else "speech",
                        "difficulty": "easy"})
    path = root / "mmau-test-mini.json"
    path.write_text(json.dumps(entries, indent=2))
    return path


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    entries = []
    for i, (sid, question, reference, *_rest) in enumerate(QA_CASES):
        _tone(root / f"{sid}.wav", freq=500 + 100 * i)
        entries.append({"testset_id": sid, "path": f"{sid}.wav", "task": "qa", "question": question,
                        "answer": reference})
    path = root / "qa.json"
    path.write_text(json.dumps({"annotation": entries}, indent=2))
    return path


# ---------------------------------------------------------------- the rule, in process


@pytest.mark.parametrize("case", MCQ_CASES, ids=[c[0] for c in MCQ_CASES])
def test_extraction_rule(case):
    _, choices, _, reply, letter, _ = case
    assert read_choice(reply, choices) == letter


def test_rule_details():
    assert read_choice("B is correct", ANIMALS) == "B"
    assert read_choice("I am not sure", ANIMALS) is None  # the pronoun, and I is no listed letter
    assert read_choice("(E)", ANIMALS) is None  # only the letters of the listed choices count
    assert read_choice("THE CAT!", ANIMALS) == "B"  # case and punctuation folded
    assert read_choice("It is not a dog, it is a cat", ANIMALS) is None  # two option texts


def test_prompt_template():
    assert render("{question}\n{choices}\nAnswer.", "Which {choices}?", ["a", "b"]) == "Which {choices}?\n(A) a\n(B) b\nAnswer."
    assert render("Listen.", "Q?", ["x", "y"]) == "Q?\n(A) x\n(B) y\nListen."  # a template without {question}
    assert render("Transcribe {this}.", None) == "Transcribe {this}."  # no question: untouched


def test_model_prompt_template_takes_question_and_choices():
    """`--prompts model`: the candidate's own template replaces the suite's, then is filled per sample."""
    from harness.measure.worker import _request
    from records.job import JobSample, JobSuite

    suite = JobSuite("mcq", "Q: {question} Options: {choices}", 8, "d")
    sample = JobSample("s", "x.wav", ["b"], question="Which?", choices=["a", "b"], answer="b")
    assert _request(suite, sample, np.zeros(1600, dtype=np.float32)).prompt == "Q: Which? Options: (A) a\n(B) b"


def test_failed_and_skipped_samples_count_as_wrong_and_as_one():
    from harness.data.errors import Problem
    from harness.run.plan import SuitePlan
    from harness.score.scoring import score_suite
    from harness.score.tasks import annotate
    from harness.suites import SUITES
    from harness.types import Sample
    from records.prediction import Prediction

    mcq = [Sample(f"m{i}", "mcq", "x", ["b"], question="Q?", choices=["a", "b"], answer="b") for i in range(3)]
    plan = SuitePlan(SUITES["mcq"], "d", mcq, [Problem("[3]", "bad audio", "m3", "mcq", ["b"])])
    lines = [Prediction("m0", "mcq", ["b"], prediction="B"), Prediction("m1", "mcq", ["b"], error="boom")]
    lines, sent = annotate([plan], lines)
    block = score_suite(plan, lines)
    assert sent == 0 and block["metrics"]["accuracy"] == 0.25 and block["metrics_scored_only"]["accuracy"] == 1.0
    assert block["coverage"] == 0.25 and block["metrics"]["n_unparsed"] == 0
    qa = [Sample(f"q{i}", "qa", "x", ["ref"], question="Q?", answer="ref") for i in range(2)]
    plan = SuitePlan(SUITES["qa"], "d", qa)
    judged = Prediction("q0", "qa", ["ref"], prediction="x", extra={"judge_score": 8, "judge": {"model": "j"}})
    block = score_suite(plan, [judged])  # q1 never ran: it counts as 1
    assert block["metrics"]["judge_score"] == 4.5 and block["metrics"]["n_unjudged"] == 1
    assert block["judge"] == {"model": "j"} and block["primary_range"] == [1.0, 10.0]
    block = score_suite(plan, [Prediction("q0", "qa", ["ref"], prediction="x")])  # no judge at all
    assert block["metrics"]["judge_score"] is None and "not judged" in block["notices"][-1]


def test_question_checks():
    ok, problems = check_question({"question": "Q?", "choices": ["x", "y"], "answer": "(b)"}, "mcq")
    assert not problems and ok["answer"] == "y"  # an answer given by its letter
    for entry, words in [
        ({"question": "Q?", "choices": ["x", "y"], "answer": "z"}, "none of the choices"),
        ({"question": "Q?", "choices": ["x"], "answer": "x"}, "2 to 26"),
        ({"question": "Q?", "choices": ["The dog", "the dog!"], "answer": "x"}, "same text"),
        ({"question": "Q?"}, "needs field(s) choices, answer"),
    ]:
        assert words in "; ".join(check_question(entry, "mcq")[1])


def test_mmau_loader_reports_every_problem(tmp_path):
    _tone(tmp_path / "a.wav")
    entries = [
        {"id": "ok", "audio_id": "a.wav", "question": "Q?", "choices": ["x", "y"], "answer": "x", "task": "music"},
        {"id": "bad", "audio_id": "a.wav", "question": "Q?", "choices": ["x", "y"], "answer": "z"},
        {"id": "gone", "audio_id": "missing.wav", "question": "Q?", "choices": ["x", "y"], "answer": "y"},
        {"id": "ok", "audio_id": "a.wav", "question": "Q?", "choices": ["x", "y"], "answer": "y"},
    ]
    path = tmp_path / "mmau.json"
    path.write_text(json.dumps(entries, indent=1))
    assert detect_format(path) == "mmau"
    samples, problems = load_data(path)
    assert samples == []  # the two "ok" entries share an id
    text = "\n".join(str(p) for p in problems)
    source = path.read_text().splitlines()
    opens = {sid: next(i for i, x in enumerate(source) if f'"id": "{sid}"' in x) for sid in ("bad", "gone")}  # its "{" is the line before
    assert f"[1] (line {opens['bad']}, id 'bad'): answer 'z' is none of the choices" in text
    assert f"[2] (line {opens['gone']}, id 'gone'): audio file not found" in text
    assert text.count("duplicate id") == 2
    out = bench("check", "--data", str(path))
    assert out.returncode == 1 and "id 'bad'" in out.stdout and "Traceback" not in out.stderr


def test_airbench_loader(tmp_path):
    foundation, chat = tmp_path / "Foundation", tmp_path / "Chat"
    (foundation / "Speaker_Gender_Recognition_VoxCeleb1").mkdir(parents=True)
    (foundation / "Audio_Grounding_AudioGrounding").mkdir(parents=True)
    (chat / "speech_QA_dialog").mkdir(parents=True)
    _tone(foundation / "Speaker_Gender_Recognition_VoxCeleb1" / "v1.wav")
    _tone(foundation / "Audio_Grounding_AudioGrounding" / "g1.flac")
    _tone(chat / "speech_QA_dialog" / "c1.wav")
    (foundation / "Foundation_meta.json").write_text(json.dumps([
        {"uniq_id": 1, "path": "v1.wav", "task_name": "Speaker_Gender_Recognition", "dataset_name": "VoxCeleb1",
         "question": "What is the gender of the speaker?", "choice_a": "male", "choice_b": "female",
         "choice_c": "", "answer_gt": "female"},
        {"uniq_id": 2, "path": "g1.wav", "task_name": "Audio_Grounding", "dataset_name": "AudioGrounding",
         "question": "When?", "choice_a": "[0, 1]", "choice_b": "[1, 2]", "choice_c": "[2, 3]", "choice_d": "[3, 4]",
         "answer_gt": "[1, 2]"},
    ]))
    (chat / "Chat_meta.json").write_text(json.dumps([
        {"uniq_id": "c1", "path": "c1.wav", "task_name": "speech_QA", "dataset_name": "dialog",
         "question": "What does the speaker want?", "answer_gt": "A table for two."},
    ]))
    assert detect_format(foundation / "Foundation_meta.json") == "airbench"
    samples, problems = load_data(foundation / "Foundation_meta.json")
    assert not problems and [s.task for s in samples] == ["mcq", "mcq"]
    assert samples[0].choices == ["male", "female"] and samples[0].answer == "female"  # empty choice_c dropped
    assert samples[0].category == "Speaker_Gender_Recognition" and samples[1].audio_path.endswith("g1.flac")
    samples, problems = load_data(chat / "Chat_meta.json", "airbench")
    assert not problems and samples[0].task == "qa" and samples[0].references == ["A table for two."]


def test_judge_file_and_score_parsing(tmp_path, monkeypatch):
    path = tmp_path / "judge.toml"
    path.write_text('base_url = "127.0.0.1:8001"\nmodel = ""\nconcurrency = 0\nseed = 1\napi_key_env = "T21_UNSET"\n')
    monkeypatch.delenv("T21_UNSET", raising=False)
    with pytest.raises(JudgeError) as err:
        load_judge(path)
    for words in ("must start with http", "model must be", "concurrency = 0", "unknown key 'seed'", "'T21_UNSET'"):
        assert words in str(err.value) and str(path) in str(err.value)
    path.write_text('base_url = "https://user:sk-in-url@judge.example:8443/v1?key=sk-q"\nmodel = "judge"\n')
    assert load_judge(path).identity()["base_url"] == "https://judge.example:8443/v1"  # no key kept
    path.write_text('base_url = "http://127.0.0.1:8001/v1"\nmodel = "judge"\n')
    judge = load_judge(path)
    assert judge.prompt_template == DEFAULT_TEMPLATE and judge.identity()["template"] == "default"
    assert "{answer}" in DEFAULT_TEMPLATE and "Score: N" in DEFAULT_TEMPLATE
    assert [parse_score(r) for r in ("Score: 7", "score: 3\nScore: 8", "Score: 0", "Score: 7.5", "seven", None)] == \
        [7, 8, None, None, None, None]


def test_bad_judge_file_stops_the_run_before_loading(tmp_path, qa_data, site):
    bad = tmp_path / "judge.toml"
    bad.write_text('model = "judge"\n')
    out = bench("run", "-c", "fixed", "--data", str(qa_data), "--judge", str(bad), "--results", str(tmp_path), env=site)
    assert out.returncode != 0 and "base_url must be a non-empty string" in out.stderr and str(bad) in out.stderr
    assert "Traceback" not in out.stderr and not any(tmp_path.glob("*/job.json"))


# ---------------------------------------------------------------- real runs


@pytest.mark.slow
def test_plugin_with_fixed_replies_gets_the_rule_s_accuracy(tmp_path, mmau, site):
    out = bench("run", "-c", "fixed", "--data", str(mmau), "--warmup", "0", "--results", str(tmp_path), env=site)
    assert out.returncode == 0, out.stdout + out.stderr
    path = run_record_path(out.stdout)
    block = json.loads(path.read_text())["suites"]["mcq"]
    expected = sum(c[5] for c in MCQ_CASES) / len(MCQ_CASES)
    assert block["metrics"]["accuracy"] == pytest.approx(expected)
    assert block["metrics"]["n_unparsed"] == sum(c[4] is None for c in MCQ_CASES)
    assert block["metrics"]["chance"] == pytest.approx(np.mean([1 / len(c[1]) for c in MCQ_CASES]))
    by_category = block["metrics"]["accuracy_by_category"]
    assert {k: v["n"] for k, v in by_category.items()} == {"speech": 6, "sound": 6}
    assert by_category["sound"]["accuracy"] == pytest.approx(np.mean([c[5] for c in MCQ_CASES[1::2]]))
    lines = {json.loads(x)["sample_id"]: json.loads(x) for x in (path.parent / "predictions.jsonl").read_text().splitlines()}
    for sid, choices, _, _, letter, correct in MCQ_CASES:
        assert lines[sid]["choice"] == letter and lines[sid]["correct"] is correct
        assert lines[sid]["prompt"].startswith(f"Question {sid}?\n(A) {choices[0]}\n(B) {choices[1]}")
    assert f"accuracy {expected:.3f}" in out.stdout and f"{sum(c[4] is None for c in MCQ_CASES)} unparsed" in out.stdout


@pytest.mark.slow
def test_batched_quality_pass_asks_the_same_questions(tmp_path, mmau, site):
    out = bench("run", "-c", "fixed", "--data", str(mmau), "--warmup", "0", "--batch-size", "4",
                "--efficiency-samples", "2", "--results", str(tmp_path), env=site)
    assert out.returncode == 0, out.stdout + out.stderr
    path = run_record_path(out.stdout)
    block = json.loads(path.read_text())["suites"]["mcq"]
    assert block["metrics"]["accuracy"] == pytest.approx(sum(c[5] for c in MCQ_CASES) / len(MCQ_CASES))
    lines = [json.loads(x) for x in (path.parent / "predictions.jsonl").read_text().splitlines()]
    assert {x["quality_batch_size"] for x in lines} == {4}
    assert all(x["prompt"].startswith(f"Question {x['sample_id']}?\n(A) ") for x in lines)


@pytest.mark.slow
def test_qa_judged_then_rescored_without_requests_and_rejudged(tmp_path, qa_data, site):
    script = {"replies": [[c[3], c[4]] for c in QA_CASES if c[3]], "default": QA_CASES[-1][4],
              "failures": {"1": "500"}}  # the first request fails once: the client retries it
    with running(script) as (base_url, _pid):
        judge = tmp_path / "judge.toml"
        judge.write_text(f'base_url = "{base_url}"\nmodel = "scripted-judge"\napi_key_env = "T21_JUDGE_KEY"\n'
                         "timeout_s = 20\nmax_retries = 2\nconcurrency = 2\n")
        env = {**site, "T21_JUDGE_KEY": "sk-t21-secret"}
        results = tmp_path / "results"
        out = bench("run", "-c", "fixed", "--data", str(qa_data), "--warmup", "0", "--judge", str(judge),
                    "--results", str(results), env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        path = run_record_path(out.stdout)
        sent = recorded_requests(base_url)
        assert len(sent) == len(QA_CASES) + 1  # one per sample, plus the retried failure
        assert all(r["model"] == "scripted-judge" and r["authorization"] == "Bearer sk-t21-secret" for r in sent)
        assert any("[Answer to grade]\nThe sky is blue" in r["user"] for r in sent)  # the default template
        record_text = path.read_text()
        block = json.loads(record_text)["suites"]["qa"]
        expected = sum(c[5] for c in QA_CASES) / len(QA_CASES)
        assert block["metrics"]["judge_score"] == pytest.approx(expected)
        assert block["metrics"]["n_unjudged"] == 2
        assert block["judge"]["model"] == "scripted-judge" and block["judge"]["base_url"] == base_url
        assert len(block["judge"]["template_sha256"]) == 64 and "sk-t21-secret" not in record_text
        lines = [json.loads(x) for x in (path.parent / "predictions.jsonl").read_text().splitlines()]
        assert {x["sample_id"]: x["judge_score"] for x in lines} == {"q1": 9, "q2": 6, "q3": None, "q4": None}
        assert {x["sample_id"]: x["judge_reply"] for x in lines}["q3"] == "Score: 11"

        run_id = path.parent.name
        out = bench("rescore", run_id, "--results", str(results), env=env)
        assert out.returncode == 0, out.stderr
        assert len(recorded_requests(base_url)) == len(sent)  # stored judgements reused: no request
        assert json.loads(path.read_text())["suites"]["qa"]["metrics"]["judge_score"] == pytest.approx(expected)

        out = bench("rescore", run_id, "--rejudge", "--results", str(results), env=env)
        assert out.returncode == 0, out.stderr
        assert len(recorded_requests(base_url)) == len(sent) + len(QA_CASES)  # one per sample
        assert f"{len(QA_CASES)} answer(s) sent to the judge" in out.stdout


# ---------------------------------------------------------------- leaderboard and docs


def _with_tasks(run, accuracy=None, judge_score=None, judge=None, qa=True):
    from tests.test_leaderboard_profiles import _with_extra

    _with_extra(run, "mcq", "accuracy", accuracy)["suites"]["mcq"]["primary_range"] = [0.0, 1.0]
    if qa:
        _with_extra(run, "qa", "judge_score", judge_score)["suites"]["qa"]["primary_range"] = [1.0, 10.0]
        if judge:
            run["suites"]["qa"]["judge"] = {"model": judge, "base_url": "http://127.0.0.1:1/v1", "template_sha256": "ab" * 32}
    return run


def test_extra_combines_mcq_and_qa_scaled():
    from leaderboard import rank, to_table
    from tests.test_leaderboard import make_run

    runs = [
        _with_tasks(make_run("a", wer=0.1), accuracy=0.5, judge_score=10.0, judge="j"),  # (0.5 + 1) / 2 = 0.75
        _with_tasks(make_run("b", wer=0.1), accuracy=1.0, judge_score=1.0, judge="j"),   # (1 + 0) / 2 = 0.5
        _with_tasks(make_run("c", wer=0.1), accuracy=0.9, qa=False),                    # (0.9 + 0) / 2 = 0.45
        make_run("d", wer=0.1),                                                           # no extra suite: n/a
    ]
    rows = {r.candidate: r for r in rank(runs, "extra=1")}
    assert {k: r.criteria["extra"].value for k, r in rows.items()} == pytest.approx({"a": 0.75, "b": 0.5, "c": 0.45, "d": None})
    assert [rows[k].rank for k in "abcd"] == [1, 2, 3, 4]
    assert rows["a"].criteria["extra.mcq"].value == 0.5 and rows["a"].criteria["extra.mcq"].weight == 0
    assert rows["c"].criteria["extra.qa"].value is None
    table = to_table(list(rows.values()))
    assert "mcq: accuracy" in table and "qa: judge_score" in table and "1xmcq+qa:scaled_mean(↑)" in table


def test_unjudged_qa_leaves_mcq_alone_in_extra(tmp_path):
    from click.testing import CliRunner

    from bench import cli
    from leaderboard import rank
    from tests.test_leaderboard import make_run, write_run

    runs = [_with_tasks(make_run(n, wer=0.1), accuracy=acc) for n, acc in (("a", 0.2), ("b", 0.8))]
    rows = {r.candidate: r for r in rank(runs, "extra=1")}
    assert rows["b"].criteria["extra"].suite == "mcq" and rows["b"].criteria["extra"].value == 0.8
    assert rows["b"].criteria["extra.qa"].value is None and rows["b"].rank == 1
    for run in runs:
        write_run(tmp_path, run)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path)]).output
    assert "qa (no run has a value: not judged" in out and "qa: judge_score" in out


def test_qa_runs_of_different_judges_are_never_ranked_together():
    from leaderboard import group_runs
    from tests.test_leaderboard import make_run

    runs = [_with_tasks(make_run(n, wer=0.1), 0.5, 5.0, judge) for n, judge in (("a", "judge-1"), ("b", "judge-1"),
                                                                              ("c", "judge-2"))]
    groups = group_runs(runs)
    assert sorted(sorted(r["candidate"] for r in g.runs) for g in groups) == [["a", "b"], ["c"]]
    assert "judged by judge-2" in " ".join(groups[0].differences(groups[1]) + groups[1].differences(groups[0]))


def test_docs_publish_the_default_template_and_the_rule():
    from tests.conftest import REPO

    page = (REPO / "docs" / "guides" / "tasks.md").read_text()
    assert DEFAULT_TEMPLATE in page
    assert "`Score: N`" in page and "counts as **1**" in page and "The reply is read by one rule" in page


def test_sweep_judge_key(tmp_path):
    from harness.sweep.spec import load_sweep

    (tmp_path / "judge.toml").write_text('base_url = "http://127.0.0.1:8001/v1"\nmodel = "judge"\n')
    (tmp_path / "sweep.toml").write_text('candidates = ["null"]\n[options]\njudge = "judge.toml"\nsuites = ["qa"]\n')
    sweep = load_sweep(tmp_path / "sweep.toml", check_candidates=False)
    options = sweep.cells[0].run_options(tmp_path / "results")
    assert options.judge == (tmp_path / "judge.toml").resolve()
    (tmp_path / "judge.toml").write_text('model = "judge"\n')
    with pytest.raises(Exception, match="base_url must be a non-empty string"):
        load_sweep(tmp_path / "sweep.toml", check_candidates=False)


# ---------------------------------------------------------------- heavy: a real vLLM as the judge


@pytest.mark.slow
@pytest.mark.heavy
def test_qa_judged_by_a_real_vllm(tmp_path, qa_data, site):
    """The tiny served model (random weights) as the judge: its replies are noise, so most samples
    stay unjudged, but every answer reaches a real vLLM and its raw reply is kept."""
    import os

    from tests.vllm_server import SERVED_NAME, tiny_model, vllm_python, vllm_server

    python, configured = vllm_python(), os.environ.get("LALM_BENCH_VLLM_PYTHON")
    if python is None and not configured:
        pytest.skip("no vLLM venv: build it with scripts/make_vllm_venv.sh (or set LALM_BENCH_VLLM_PYTHON)")
    assert python is not None, f"LALM_BENCH_VLLM_PYTHON={configured} is not a file"
    with vllm_server(python, tiny_model(python), tmp_path) as (url, _pid):
        judge = tmp_path / "judge.toml"
        judge.write_text(f'base_url = "{url}"\nmodel = "{SERVED_NAME}"\nmax_tokens = 16\ntimeout_s = 120\n')
        out = bench("run", "-c", "fixed", "--data", str(qa_data), "--warmup", "0", "--judge", str(judge),
                    "--results", str(tmp_path / "results"), env=site, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    path = run_record_path(out.stdout)
    block = json.loads(path.read_text())["suites"]["qa"]
    assert block["judge"]["model"] == SERVED_NAME and 1 <= block["metrics"]["judge_score"] <= 10
    lines = [json.loads(x) for x in (path.parent / "predictions.jsonl").read_text().splitlines()]
    assert all(isinstance(x["judge_reply"], str) and "judge_error" not in x for x in lines)


def test_an_unreachable_judge_leaves_every_answer_unjudged_with_its_reason():
    import socket

    from harness.score.judge import JudgeConfig, judge_all

    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    judge = JudgeConfig(base_url=f"http://127.0.0.1:{port}/v1", model="j", timeout_s=2, max_retries=0)
    out = judge_all(judge, [("Q?", "ref", "a"), ("Q?", "ref", "b")])
    assert [j.score for j in out] == [None, None] and all("Connection" in j.error for j in out)
