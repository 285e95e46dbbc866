"""`bench.py leaderboard` prints the same bytes as before its speed work, on varied records.

The expected outputs in tests/data/leaderboard_golden/ were written by main at 1f36ca8, before
the leaderboard lost pandas and its quadratic lookups (issue 23), from the records of
tests/leaderboard_records.varied_records: ties, missing values, a reference, SPIDEr and its
CIDEr-D fallback, nota2025, repeats, intervals, coverage, extra suites, failed, partial and
broken files. A change meant to alter the output rewrites them with
LEADERBOARD_GOLDEN_WRITE=1 (and says so in its commit).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import cli
from tests.leaderboard_records import varied_records

GOLDEN = Path(__file__).parent / "data" / "leaderboard_golden"
VARIANTS = {
    "json-ci": ["--format", "json", "--ci"],
    "table-ci": ["--ci"],
    "csv-ci": ["--format", "csv", "--ci"],
    "markdown-exact": ["--format", "markdown", "--baseline", "c03", "--weights", "competition-exact",
                       "--min-coverage", "0.95"],
    "json-mix": ["--format", "json", "--mix"],
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return varied_records(tmp_path_factory.mktemp("varied") / "results", n=48)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_leaderboard_output_is_unchanged(results, name):
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(results), *VARIANTS[name]])
    assert out.exit_code == 0, out.output
    text = {"stdout": out.stdout, "stderr": out.stderr.replace(str(results), "<RESULTS>")}
    for stream, got in text.items():
        path = GOLDEN / f"{name}.{stream}"
        if os.environ.get("LEADERBOARD_GOLDEN_WRITE") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got, encoding="utf-8")
        expected = path.read_text(encoding="utf-8")
        if got != expected:
            lines = [(i, a, b) for i, (a, b) in enumerate(zip(got.splitlines(), expected.splitlines(), strict=False), 1) if a != b]
            first = lines[0] if lines else (None, f"{len(got)} chars", f"{len(expected)} chars")
            pytest.fail(f"{name} {stream} differs from {path}; first difference at line {first[0]}:\n"
                        f"  got:      {first[1]}\n  expected: {first[2]}")
