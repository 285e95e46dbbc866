"""RunOptions checks itself, whoever makes it; the CLI's choices are the code's own constants."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

import bench
from harness.data import DATA_FORMATS
from harness.data.loaders import FORMATS
from harness.data.long_audio import MODES as LONG_AUDIO_CHECKED
from harness.data.prompts import MODES as PROMPTS_CHECKED
from harness.run.run_options import PROTOCOLS, RunError, RunOptions, option_problems
from harness.suites import LONG_AUDIO_MODES, PROMPT_MODES


@pytest.mark.parametrize("options, problem", [
    ({"threads": 0}, "threads = 0 must be at least 1"),
    ({"warmup": -1}, "warmup = -1 must be at least 0"),
    ({"limit": 0}, "limit = 0 must be at least 1"),
    ({"repeat": 0}, "repeat = 0 must be at least 1"),
    ({"batch_size": 0}, "batch_size = 0 must be at least 1"),
    ({"efficiency_samples": 0}, "efficiency_samples = 0 must be at least 1"),
    ({"timeout_s": -5.0}, "timeout_s = -5.0 must be at least 0"),
    ({"protocol": "nota"}, "unknown measurement protocol 'nota'; known: default, nota2025"),
    ({"protocol": "nota2025", "batch_size": 4}, "--batch-size applies to the default protocol only"),
    ({"prompts": "mine"}, "unknown --prompts mode 'mine'; choose one of suite, model"),
    ({"long_audio": "split"}, "unknown --long-audio mode 'split'; choose one of chunk, truncate, fail, native"),
    ({"data_format": "csv"}, "unknown data format 'csv'"),
    ({"device": "gpu"}, "unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
])
def test_each_bad_option_is_refused_with_its_reason(options, problem):
    with pytest.raises(RunError) as err:
        RunOptions(candidate="null", **options)
    assert problem in str(err.value)


def test_every_problem_is_named_at_once_and_good_options_pass():
    problems = option_problems({"threads": 0, "limit": 0, "prompts": "mine"})
    assert len(problems) == 3
    options = RunOptions(candidate="null", device="cuda:1", limit=1, warmup=0, long_audio="chunk",
                         results="out", data="d.json")  # strings, as a resumed job file gives them
    assert (options.results, options.data) == (Path("out"), Path("d.json"))


def test_the_cli_choices_are_the_constants_the_code_checks():
    params = {p.name: p for p in bench.run.params}
    assert list(params["data_format"].type.choices) == list(DATA_FORMATS) == list(FORMATS)
    assert list(params["protocol"].type.choices) == list(PROTOCOLS)
    assert list(params["prompts"].type.choices) == list(PROMPT_MODES) == list(PROMPTS_CHECKED)
    assert list(params["long_audio"].type.choices) == list(LONG_AUDIO_MODES) == list(LONG_AUDIO_CHECKED)
    assert all(isinstance(p.type, click.Choice) for p in (params["data_format"], params["protocol"]))


def test_every_run_option_of_the_cli_is_a_field_of_run_options():
    """`bench.py run` hands its options to RunOptions by name: an option without a field fails here."""
    fields = set(RunOptions.__dataclass_fields__)
    names = {p.name for p in bench.run.params} - {"resume_id"}
    assert names <= fields, names - fields


def test_the_cli_imports_its_choices_without_the_model_stack():
    """bench.py's option lists come from light modules: `--help` loads no torch, numpy or pandas."""
    import subprocess
    import sys

    code = "import sys, bench; print(sorted(m for m in ('torch', 'numpy', 'pandas', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(bench.__file__).parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
