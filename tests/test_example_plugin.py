"""The documented example plugin package installs with pip and runs through the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, bench, run_record_path

EXAMPLE = REPO / "examples" / "lalm-bench-example-plugin"


@pytest.fixture(scope="module")
def example_env(tmp_path_factory):
    target = tmp_path_factory.mktemp("example_site")
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = tmp_path_factory.mktemp("example_src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    # --no-deps: lalm-bench itself is the repo under test; --no-build-isolation: no download of setuptools.
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return {"PYTHONPATH": f"{target}:{REPO}"}


def test_example_candidate_is_listed_and_runs(example_env, tmp_path):
    listing = json.loads(bench("candidates", "--format", "json", env=example_env).stdout)
    hello = next(c for c in listing if c["name"] == "scripted-hello")
    assert hello["family"] == "scripted-reply" and hello["source"] == "entry-point:lalm-bench-example-plugin"
    out = bench("run", "-c", "scripted-hello", "--limit", "2", "--warmup", "1", "--results", str(tmp_path), env=example_env)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    predictions = [json.loads(line) for line in (run_record_path(out.stdout).parent / "predictions.jsonl").read_text().splitlines()]
    asr = [p for p in predictions if p["task"] == "asr"]
    assert [p["prediction"] for p in asr] == ["hello world"] * 2 and all(p["n_tokens"] == 2 for p in asr)
    # prefill 10 ms then a 2 ms gap: TTFT >= 10 ms and TPOT >= 2 ms (lower bounds only: sleeps can overshoot)
    assert record["efficiency"]["ttft_ms"]["p50"] >= 10 and record["efficiency"]["tpot_ms"]["p50"] >= 2


def test_example_family_takes_a_candidate_file_and_checks_its_options(example_env, tmp_path):
    slow = EXAMPLE / "src" / "lalm_bench_example" / "slow.toml"
    out = bench("run", "-c", str(slow), "--suite", "asr", "--limit", "1", "--warmup", "0", "--results", str(tmp_path), env=example_env)
    assert out.returncode == 0, out.stdout + out.stderr
    record = json.loads(run_record_path(out.stdout).read_text())
    assert record["candidate"] == "scripted-slow" and record["suites"]["asr"]["n_scored"] == 1
    typo = tmp_path / "typo.toml"
    typo.write_text(slow.read_text().replace("gap_ms", "gap_msec"))
    bad = bench("run", "-c", str(typo), "--results", str(tmp_path / "r"), env=example_env)
    assert bad.returncode != 0 and "'gap_msec' (did you mean 'gap_ms'?)" in bad.stderr
