"""Weight profiles (built-in, TOML file, string, mapping), the tie rule and the extra criterion."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench import cli
from leaderboard import load_profile, rank, to_json, to_table
from leaderboard.profiles import builtin_profiles
from tests.test_leaderboard import make_run, write_run

NOTA = {"wer": 1.0, "spider": 1.0, "memory_mb": 2.0, "latency_ms": 2.0, "extra": 1.0}


def test_builtin_competition_profiles_are_toml_files_and_competition_is_the_default():
    assert set(builtin_profiles()) >= {"competition", "competition-exact"}
    assert builtin_profiles()["competition"].suffix == ".toml"
    for spec in (None, "competition"):
        profile = load_profile(spec)
        assert (profile.name, profile.weights, profile.ties) == ("competition", NOTA, "min")
        assert profile.tolerance["memory_mb"] > 0 and profile.tolerance["latency_ms"] > 0
    exact = load_profile("competition-exact")
    assert exact.weights == NOTA and not any(exact.tolerance.values())


def test_old_weight_profile_name_is_refused_naming_the_new_ones():
    with pytest.raises(ValueError, match="nota2025.*measurement protocol.*'competition'.*'competition-exact'"):
        load_profile("nota2025")
    out = CliRunner().invoke(cli, ["leaderboard", "--results", ".", "--weights", "nota2025"])
    assert out.exit_code != 0 and "competition-exact" in out.output and "Traceback" not in out.output


def test_toml_file_profile(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('ties = "average"\n[weights]\nwer = 3\nlatency = 0.5\n')
    profile = load_profile(str(path))
    assert profile.name == "mine" and profile.ties == "average" and profile.source == str(path)
    assert profile.weights == {"wer": 3.0, "spider": 0.0, "memory_mb": 0.0, "latency_ms": 0.5, "extra": 0.0}


def test_string_and_mapping_profiles():
    assert load_profile("wer=1,spider=1,memory=2,latency=2,extra=1").weights == NOTA
    assert load_profile({"memory": 1}).weights["memory_mb"] == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ties = "max"\n[weights]\nwer = 1\n', "ties must be one of"),
        ("[weights]\nbleu = 1\n", "unknown criterion 'bleu'"),
        ("[weights]\nwer = true\n", "not a number"),
        ('name = "x"\n', "needs a [weights] table"),
        ("colour = 1\n[weights]\nwer = 1\n", "unknown key(s) colour"),
        ("[weights\n", "cannot read weight profile"),
    ],
)
def test_bad_toml_profiles(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_profile(path)


def test_missing_profile_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_profile(str(tmp_path / "nope.toml"))


def test_ties_min_versus_average(tmp_path):
    # wer: a .1, b .1, c .2. min: 1, 1, 3. average: 1.5, 1.5, 3.
    runs = [make_run(n, wer=w, memory=1, latency=1) for n, w in (("a", 0.1), ("b", 0.1), ("c", 0.2))]
    rows = {r.candidate: r for r in rank(runs, "wer=1")}
    assert [rows[n].criteria["wer"].rank for n in "abc"] == [1, 1, 3]
    path = tmp_path / "avg.toml"
    path.write_text('ties = "average"\n[weights]\nwer = 1\n')
    rows = {r.candidate: r for r in rank(runs, str(path))}
    assert [rows[n].criteria["wer"].rank for n in "abc"] == [1.5, 1.5, 3]
    assert [(rows[n].score, rows[n].rank) for n in "abc"] == [(1.5, 1), (1.5, 1), (3.0, 3)]
    assert to_json([rows["a"]])[0]["criteria"]["wer"]["rank"] == 1.5
    text = to_table(list(rows.values()), "table")
    assert "0.100 (1.5)" in text and "ties share the mean rank" in text


def _with_extra(run, suite="ser", metric="accuracy", value=None, higher=True):
    run["suites"][suite] = {
        "dataset": "emo", "primary_metric": metric, "higher_is_better": higher, "extra": True,
        "metrics": {metric: value},
    }
    return run


def test_extra_criterion_ranked_and_weighted():
    # wer: a .1 (1), b .2 (2); extra accuracy (higher better): a .5 (2), b .9 (1)
    # weights wer=1, extra=3: a 1 + 6 = 7, b 2 + 3 = 5
    runs = [
        _with_extra(make_run("a", wer=0.1), value=0.5),
        _with_extra(make_run("b", wer=0.2), value=0.9),
    ]
    rows = rank(runs, "wer=1,extra=3")
    assert [(r.candidate, r.score) for r in rows] == [("b", 5.0), ("a", 7.0)]
    extra = rows[0].criteria["extra"]
    assert (extra.value, extra.rank, extra.suite, extra.metric, extra.direction) == (0.9, 1, "ser", "accuracy", "max")
    assert to_json(rows)[0]["criteria"]["extra"] == {
        "value": 0.9, "rank": 1, "metric": "accuracy", "suite": "ser", "higher_is_better": True,
    }
    assert "3xser:accuracy(↑)" in to_table(rows)


def test_extra_lower_is_better_and_first_suite_by_name(tmp_path):
    runs = [
        _with_extra(_with_extra(make_run("a", wer=0.1), "zz", "acc", 0.9), "kws", "error_rate", 0.3, higher=False),
        _with_extra(_with_extra(make_run("b", wer=0.1), "zz", "acc", 0.1), "kws", "error_rate", 0.1, higher=False),
    ]
    rows = {r.candidate: r for r in rank(runs, "extra=1")}
    assert rows["b"].criteria["extra"].rank == 1 and rows["b"].criteria["extra"].suite == "kws"
    for run in runs:
        write_run(tmp_path, run)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path)]).output
    assert "Extra criterion: suite 'kws', metric error_rate (lower is better)" in out
    assert "other extra suites" in out and "zz" in out


def test_no_extra_suite_means_no_extra_criterion(tmp_path):
    run = make_run("a", wer=0.1, memory=1, latency=1)
    run["suites"]["asr"].update(primary_metric="wer", higher_is_better=False, extra=False)
    (row,) = rank([run])
    assert "extra" not in row.criteria
    write_run(tmp_path, run)
    out = CliRunner().invoke(cli, ["leaderboard", "--results", str(tmp_path), "--format", "json"]).output
    assert set(json.loads(out)[0]["criteria"]) == {"wer", "spider", "memory_mb", "latency_ms"}


def test_cli_weights_file_and_errors(tmp_path):
    write_run(tmp_path / "res", make_run("a", wer=0.1, memory=2, latency=1))
    write_run(tmp_path / "res", make_run("b", wer=0.2, memory=1, latency=1))
    profile = tmp_path / "p.toml"
    profile.write_text("[weights]\nmemory = 1\n")
    runner = CliRunner()
    rows = json.loads(runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "res"), "--weights", str(profile), "--format", "json"]).output)
    assert [r["candidate"] for r in rows] == ["b", "a"]
    bad = runner.invoke(cli, ["leaderboard", "--results", str(tmp_path / "res"), "--weights", str(tmp_path / "none.toml")])
    assert bad.exit_code != 0 and "not found" in bad.output and "Traceback" not in bad.output
