"""Registry (built-in, TOML file, entry point) and the CLI, through click's runner and real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bench import cli
from harness.registry import RegistryError, builtin_specs, resolve
from tests.conftest import REPO, bench, run_record_path


def test_builtins_are_registered():
    specs = builtin_specs()
    assert {"baseline", "qlora4bit", "whisper-tiny"} <= set(specs)
    assert specs["qlora4bit"].recipe == ["nf4:llm"] and specs["qlora4bit"].family == "salmonn"


def test_unknown_candidate_lists_known_names():
    with pytest.raises(RegistryError, match="unknown candidate 'nope'; known: .*baseline.*qlora4bit"):
        resolve("nope")


def test_toml_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('family = "salmonn"\nrecipe = ["bf16"]\n[options]\nmodel_path = "/models/x"\n')
    spec = resolve(str(path))
    assert (spec.name, spec.family, spec.recipe, spec.options) == ("mine", "salmonn", ["bf16"], {"model_path": "/models/x"})
    (tmp_path / "broken.toml").write_text("family = \n")
    with pytest.raises(RegistryError, match="broken.toml: invalid TOML"):
        resolve(str(tmp_path / "broken.toml"))
    (tmp_path / "nofamily.toml").write_text("name = 'x'\n")
    with pytest.raises(RegistryError, match="missing `family"):
        resolve(str(tmp_path / "nofamily.toml"))


def test_entry_point_plugin_is_listed_and_runs(plugin_site, tmp_path):
    listed = bench("candidates", env=plugin_site)
    assert listed.returncode == 0, listed.stderr
    assert "echo" in listed.stdout and "entry-point:lbplugin-echo" in listed.stdout

    result = bench("run", "--candidate", "echo", "--limit", "2", "--warmup", "1", "--results", str(tmp_path), env=plugin_site)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(run_record_path(result.stdout).read_text())
    assert record["candidate"] == "echo" and record["status"] == "ok"
    assert list(record["suites"]) == ["asr"]  # aac skipped: the plugin does asr only
    assert record["suites"]["asr"]["n_samples"] == 2
    eff = record["efficiency"]
    assert eff["ttft_ms"]["p50"] > 0 and eff["tpot_ms"]["p50"] > 0
    assert eff["latency_ms"] == pytest.approx(eff["ttft_ms"]["p50"] + eff["tpot_ms"]["p50"])


def test_bad_samples_fail_alone_and_the_run_goes_on(plugin_site, tmp_path):
    audio = REPO / "harness" / "data" / "demo_data" / "speech"
    good = sorted(audio.iterdir())[0]
    (tmp_path / "not_audio.wav").write_text("hello")
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"annotation": [
        {"testset_id": "good", "path": str(good), "task": "asr", "text": "hello world"},
        {"testset_id": "unreadable", "path": "not_audio.wav", "task": "asr", "text": "x"},
        {"testset_id": "missing", "path": "missing.wav", "task": "asr", "text": "x"},
        {"testset_id": "boom", "path": str(good), "task": "asr", "text": "x"},
    ]}))
    refused = bench("run", "-c", "echo", "--data", str(data), "--results", str(tmp_path / "r"), env=plugin_site)
    assert refused.returncode != 0 and "missing" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing started

    result = bench("run", "-c", "echo", "--data", str(data), "--skip-invalid", "--warmup", "0",
                   "--results", str(tmp_path / "r"), env=plugin_site)
    assert result.returncode == 0, result.stdout + result.stderr
    suite = json.loads(run_record_path(result.stdout).read_text())["suites"]["asr"]
    assert (suite["n_samples"], suite["n_failed"], suite["n_scored"]) == (4, 3, 1)
    reasons = {f["sample_id"]: f["reason"] for f in suite["failures"]}
    assert "cannot decode audio" in reasons["unreadable"]
    assert "audio file not found" in reasons["missing"]
    assert reasons["boom"] == "RuntimeError: scripted failure"
    assert suite["metrics_scored_only"]["wer"] == 0.0  # "hello world" was the good sample's reference
    # The failed and the skipped samples count as empty predictions: 3 deletions ("x") over 5 words.
    assert suite["metrics"]["wer"] == pytest.approx(3 / 5) and suite["coverage"] == 0.25


def test_help_does_not_import_torch():
    code = "import sys, runpy; sys.argv=['bench.py','--help']\ntry:\n runpy.run_path('bench.py', run_name='__main__')\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--candidate", "nope"], "unknown candidate 'nope'; known:"),
    (["run", "--candidate", "baseline", "--data", "/no/such.json"], "/no/such.json: 1 problem(s):\n  file not found"),
    (["run", "--candidate", "whisper-tiny", "--suite", "aac"], "does not do aac"),
    (["run", "--candidate", "baseline", "--suite", "asr,xyz"], "unknown suite(s) xyz"),
    (["run", "--candidate", "/tmp/none.toml"], "candidate file not found"),
    (["leaderboard", "--results", "/no/results"], "results folder not found"),
])
def test_user_errors_are_one_clear_message(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_listing_commands():
    runner = CliRunner()
    out = runner.invoke(cli, ["candidates"]).output
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert rows["baseline"] == "aac,asr,mcq,qa" and rows["whisper-tiny"] == "asr" and rows["null"] == "aac,asr"
    out = runner.invoke(cli, ["suites"]).output
    assert "Recognize the speech and give me the transcription." in out


def test_leaderboard_command_formats(tmp_path):
    def run_json(name, wer, mem, lat):
        folder = tmp_path / f"r-{name}"
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({
            "schema_version": 1, "run_id": f"r-{name}", "candidate": name, "status": "ok",
            "created_at": "2026-11-25T00:00:00+00:00", "environment": {},
            "suites": {"asr": {"metrics": {"wer": wer}}},
            "efficiency": {"peak_memory_mb": mem, "latency_ms": lat},
        }))

    run_json("a", 0.1, 100.0, 50.0)
    run_json("b", 0.2, 50.0, 40.0)
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["leaderboard", "--results", str(tmp_path), "--format", "json"]).output)
    # a: ranks 1,_,2,2 ; b: 2,_,1,1 ; spider n/a for both -> rank 2 each
    # a = 1 + 2 + 2*2 + 2*2 = 11 ; b = 2 + 2 + 2*1 + 2*1 = 8
    assert [(r["candidate"], r["score"], r["rank"]) for r in rows] == [("b", 8, 1), ("a", 11, 2)]
    for fmt in ("table", "markdown", "csv"):
        out = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path), "--format", fmt])
        assert out.exit_code == 0 and "b" in out.output
    bad = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path), "--weights", "wer=x"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_resolving_one_builtin_imports_only_its_own_family():
    """Checking every built-in's options imported every family (Granite's processor alone took
    ~10 s) on each run and in each measured child; only the chosen candidate's are checked now."""
    code = ("import sys, json; from harness.registry import resolve; resolve('null'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('candidates.families.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout) == ["candidates.families.null"]


def test_a_broken_builtin_option_is_still_reported_with_its_file(monkeypatch, tmp_path):
    import harness.registry as registry

    (tmp_path / "typo.toml").write_text('family = "salmonn"\n[options]\nmodel_pth = "x"\n')
    monkeypatch.setattr(registry, "BUILTIN_CONFIG_DIR", tmp_path)
    with pytest.raises(RegistryError, match=r"typo\.toml: .*model_pth"):
        resolve("typo")


def test_families_say_when_their_default_weights_are_random():
    from harness.registry import build
    from harness.spec import CandidateSpec
    from harness.types import Request

    baseline = build(resolve("baseline"))
    assert baseline.run_info() == {"weights": "random", "max_new_tokens": 16}
    assert baseline.token_budget(Request("s", None, "asr", "p", 64)) == 16  # random weights never stop
    assert "weights" not in build(resolve("whisper-tiny-hf")).run_info()
    assert build(resolve("qwen3-asr-tiny")).run_info()["weights"] == "random"
    real = build(CandidateSpec(name="mine", family="salmonn", options={"model_path": "/models/x"}))
    assert real.run_info() == {} and real.token_budget(Request("s", None, "asr", "p", 64)) == 64
    capped = build(CandidateSpec(name="c", family="salmonn", options={"model_path": "/m", "max_new_tokens": 8}))
    assert capped.token_budget(Request("s", None, "asr", "p", 64)) == 8
