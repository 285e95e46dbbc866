"""Sweeps: the matrix file, resumable local sweeps, and the Ray executor on a real two-node cluster."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.registry import resolve
from harness.sweep.spec import SweepError, derive, load_sweep
from tests.conftest import REPO, bench
from tests.ray_cluster import LoopbackNamespace, RayCluster, wait_for

# 2 candidates x 2 recipe variants, ASR only, 2 samples each: the cheapest real 2x2 matrix.
SWEEP = """
name = "two-by-two"
candidates = ["baseline", "int8"]
recipes = ["", "prune:llm:drop=1"]

[options]
suites = ["asr"]
limit = 2
warmup = 0
"""
NAMES = ["baseline", "baseline+prune:llm:drop=1", "int8", "int8+prune:llm:drop=1"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def records(results: Path) -> dict[str, dict]:
    """run.json of every run under `results`, by run id."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(results.glob("*/run.json"))}


def sample_ids(run_dir: Path) -> list[str]:
    return [json.loads(line)["sample_id"] for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


# --- the sweep file ------------------------------------------------------------------------


def test_matrix_names_and_keys(tmp_path):
    sweep = load_sweep(write(tmp_path / "s.toml", SWEEP))
    assert [c.spec.name for c in sweep.cells] == NAMES
    by_name = {c.spec.name: c for c in sweep.cells}
    assert by_name["int8+prune:llm:drop=1"].spec.recipe == ["int8-dynamic:llm", "prune:llm:drop=1"]
    assert by_name["int8"].spec == resolve("int8")  # the empty recipe variant is the candidate as is
    # Keys are stable across loads and files, and change with anything that changes the run.
    again = load_sweep(write(tmp_path / "other-name.toml", SWEEP.replace("two-by-two", "renamed")))
    assert [c.key for c in again.cells] == [c.key for c in sweep.cells]
    assert len({c.key for c in sweep.cells}) == 4
    changed = load_sweep(write(tmp_path / "l3.toml", SWEEP.replace("limit = 2", "limit = 3")))
    assert not {c.key for c in changed.cells} & {c.key for c in sweep.cells}


def test_recipe_variant_modes():
    base = resolve("int8")
    appended = derive(base, ["prune:llm:drop=1"])
    assert (appended.name, appended.recipe) == ("int8+prune:llm:drop=1", ["int8-dynamic:llm", "prune:llm:drop=1"])
    replaced = derive(base, ["bf16", "nf4:llm"], "replace")
    assert (replaced.name, replaced.recipe) == ("int8[bf16+nf4:llm]", ["bf16", "nf4:llm"])
    assert derive(base, [], "replace").recipe == []
    assert base.recipe == ["int8-dynamic:llm"]  # the base is not changed


def test_variants_tables_datasets_and_axes(tmp_path):
    data = REPO / "harness" / "data" / "demo_data" / "asr.json"
    sweep = load_sweep(write(tmp_path / "s.toml", f"""
datasets = ["demo", {{path = "{data}", format = "json"}}]
protocols = ["default", "nota2025"]
threads = [1, 2]
[[variants]]
base = "baseline"
recipes = ["", "bf16+nf4:llm", ["int8-dynamic:llm"]]
[[variants]]
base = "int8"
mode = "replace"
recipes = [""]
"""))
    names = sorted({c.spec.name for c in sweep.cells})
    assert names == ["baseline", "baseline+bf16+nf4:llm", "baseline+int8-dynamic:llm", "int8[]"]
    assert len(sweep.cells) == 4 * 2 * 2 * 2
    assert {c.dataset.label for c in sweep.cells} == {"demo", "asr.json"}


def test_strict_file_errors_name_the_key_and_the_nearest_one(tmp_path):
    bad = write(tmp_path / "bad.toml", """
candidate = ["baseline"]
protocols = ["defualt"]
threads = [0]
datasets = [{path = "missing.json", fromat = "json"}]
[options]
limt = 2
[[variants]]
base = "baseline"
recipes = ["nf4:lm"]
modes = "append"
""")
    with pytest.raises(SweepError) as err:
        load_sweep(bad)
    text = str(err.value)
    assert str(bad) in text
    for expected in ("'candidate' (did you mean 'candidates'?)", "'fromat' (did you mean 'format'?)",
                     "'limt' (did you mean 'limit'?)", "'modes' (did you mean 'mode'?)", "missing.json does not exist",
                     "unknown measurement protocol 'defualt'", "threads: 0", "unknown part 'lm'"):
        assert expected in text, expected
    axis = write(tmp_path / "axis.toml", 'candidates = ["baseline"]\n[options]\nthreads = 2\nlimit = "2"\n')
    with pytest.raises(SweepError, match=r"`threads` is a matrix axis.*\n.*'limit' = '2' should be an integer"):
        load_sweep(axis)
    out = bench("sweep", str(bad), "--dry-run")
    assert out.returncode != 0 and "did you mean 'candidates'" in out.stderr and "Traceback" not in out.stderr


def test_readme_sweep_example_parses_and_dry_runs(tmp_path):
    section = (REPO / "docs" / "guides" / "sweeps.md").read_text()  # the README's Sweep section moved here
    example = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    assert example == (REPO / "examples" / "sweep.toml").read_text()  # the copy the docs point at
    path = write(tmp_path / "example.toml", example)
    cells = load_sweep(path).cells
    assert len(cells) >= 4
    out = bench("sweep", str(path), "--dry-run", "--results", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("[to run]") == len(cells)
    assert not (tmp_path / "r").exists()  # a dry run writes nothing


# --- local sweeps: run, lose the driver, run again, skip ------------------------------------


def sweep_command(sweep: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "bench.py"), "sweep", str(sweep), "--results", str(results), *extra]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The 2x2 sweep run locally: its driver is SIGKILLed while the second cell runs, the sweep is
    run again (which finishes it) and a third time (which skips everything)."""
    base = tmp_path_factory.mktemp("sweep")
    sweep, results = write(base / "sweep.toml", SWEEP), base / "results"
    driver = subprocess.Popen(sweep_command(sweep, results), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        def second_cell_started():
            runs = sorted(p for p in results.glob("*/predictions.jsonl") if p.stat().st_size)
            return len(runs) >= 2 and len(records(results)) == 1 and runs
        interrupted = wait_for(second_cell_started, 300, "the second cell's first prediction")[-1].parent
        driver.send_signal(signal.SIGKILL)  # a lost driver: its measured child dies with it
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=30)
    kept = sample_ids(interrupted)
    second = bench("sweep", str(sweep), "--results", str(results), timeout=900)
    third = bench("sweep", str(sweep), "--results", str(results), timeout=300)
    return {"results": results, "second": second, "third": third, "interrupted": interrupted,
            "kept": kept, "sweep": sweep}


def test_dry_run_lists_the_four_cells(tmp_path):
    # A dry run runs nothing: it needs no real runs, only the sweep file (and an empty results folder).
    dry = bench("sweep", str(write(tmp_path / "sweep.toml", SWEEP)), "--dry-run", "--results", str(tmp_path / "r"))
    assert dry.returncode == 0, dry.stderr
    assert "4 cell(s)" in dry.stdout and dry.stdout.count("[to run]") == 4
    for name in NAMES:
        assert f" {name} · demo · default · 1 thread" in dry.stdout
    assert not (tmp_path / "r").exists()  # and writes nothing


@pytest.mark.slow
def test_a_lost_driver_is_finished_by_running_the_sweep_again(local_sweep):
    second, results = local_sweep["second"], local_sweep["results"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 finished already" in second.stdout and "resuming interrupted run" in second.stdout
    runs = records(results)
    assert sorted(r["candidate"] for r in runs.values()) == NAMES  # one run per cell: nothing ran twice
    assert all(r["status"] == "ok" and r["sweep_cell"] for r in runs.values())
    # The interrupted cell was continued in its own folder from what it had predicted.
    resumed = runs[local_sweep["interrupted"].name]
    assert local_sweep["kept"] and resumed["executor"] == {"name": "local", "hostname": resumed["environment"]["hostname"]}
    ids = sample_ids(local_sweep["interrupted"])
    assert ids[: len(local_sweep["kept"])] == local_sweep["kept"] and len(ids) == len(set(ids)) == 2
    # It ends with the leaderboard of what it ran.
    assert "Ranked together" in second.stdout
    for name in NAMES:
        assert re.search(rf"^\s+\d+\s+{re.escape(name)}\b", second.stdout, re.M), name
    state = json.loads((results / "sweeps" / "two-by-two.json").read_text())
    assert (state["done"], state["total"]) == (4, 4) and {c["state"] for c in state["cells"]} <= {"ok", "skipped"}


@pytest.mark.slow
def test_running_a_finished_sweep_again_skips_every_cell(local_sweep):
    third = local_sweep["third"]
    assert third.returncode == 0, third.stdout + third.stderr
    assert "4 cell(s), 4 finished already" in third.stdout
    assert third.stdout.count("skipped (finished run exists)") == 4 and "running" not in third.stdout
    assert "4 skipped of 4 cell(s)" in third.stdout and "Ranked together" in third.stdout
    assert len(records(local_sweep["results"])) == 4


@pytest.mark.slow
def test_a_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path, plugin_site):
    # The first dataset names an audio file that is not there: that cell fails before any model
    # loads, and the sweep goes on to the next cell (the fast `echo` plugin candidate).
    bad = write(tmp_path / "bad.json", json.dumps({"annotation": [
        {"testset_id": "gone", "path": "missing.wav", "task": "asr", "text": "x"}]}))
    sweep = write(tmp_path / "s.toml", f'candidates = ["echo"]\ndatasets = ["{bad}", "demo"]\n'
                                       '[options]\nsuites = ["asr"]\nlimit = 2\nwarmup = 0\n')
    out = bench("sweep", str(sweep), "--results", str(tmp_path / "r"), env=plugin_site)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stdout + out.stderr
    assert "failed: echo · bad.json" in out.stdout and "missing.wav" in out.stdout
    assert "ok: echo · demo" in out.stdout and "1 cell(s) failed" in out.stderr
    assert [r["status"] for r in records(tmp_path / "r").values()] == ["ok"]
    state = json.loads((tmp_path / "r" / "sweeps" / "s.json").read_text())
    assert [c["state"] for c in state["cells"]] == ["failed", "ok"]
    assert "missing.wav" in state["cells"][0]["error"]


# --- the Ray executor on a real cluster ------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, model_cache):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'lalm-bench[ray]')")
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under ~107 characters
    if len(str(temp)) > 50:
        pytest.skip(f"temp dir {temp} is too long for Ray's unix socket paths")
    (temp / "tmp").mkdir()
    # Workers import this checkout; TMPDIR puts the node-local run folders inside the test's dir.
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temp / "tmp"), "LALM_BENCH_CACHE": str(model_cache)}
    namespace = LoopbackNamespace()
    why_not = namespace.create()
    if why_not:
        pytest.skip(f"no loopback-only network namespace for the Ray cluster ({why_not}); Ray's multi-node "
                    "servers listen on all interfaces, so the test runs it only where nothing else can reach it")
    cluster = RayCluster(temp, env, namespace.prefix)
    try:
        cluster.start('{"device:testbox": 2}')
        yield cluster
    finally:
        cluster.stop()
        namespace.delete()


RAY_SWEEP = SWEEP.replace('["baseline", "int8"]', '["baseline"]')  # 2 of the 4 local cells


def ray_sweep(cluster: RayCluster, sweep: Path, results: Path, *extra: str, timeout: float = 300):
    """The sweep's driver, inside the cluster's loopback-only namespace."""
    command = [*cluster.prefix, *sweep_command(sweep, results, "--executor", "ray", "--ray-address", cluster.address, *extra)]
    return subprocess.run(command, cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ray_sweep_with_a_kill(ray_cluster, tmp_path_factory):
    """The Ray executor runs 2 of the local cells on the node with the custom resource; one cell's
    Ray worker is SIGKILLed mid-cell, after its first prediction reached the driver.

    To make "mid-cell" certain rather than a race, the cell's measured child is frozen (SIGSTOP)
    as soon as its first prediction is on the node, and the worker is killed once the driver
    holds that prediction; the frozen child dies with the worker (parent-death signal)."""
    base = tmp_path_factory.mktemp("raysweep")
    sweep, results = write(base / "ray.toml", RAY_SWEEP), base / "results"
    node_tmp = ray_cluster.temp_dir / "tmp"
    driver = subprocess.Popen(
        [*ray_cluster.prefix, *sweep_command(sweep, results, "--executor", "ray", "--ray-address", ray_cluster.address,
                                             "--device-kind", "testbox")],
        cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        def first_prediction_on_a_node():
            return next((f for f in node_tmp.glob("lalm-bench-cell-*/*/predictions.jsonl")
                         if f.read_bytes().count(b"\n") >= 1), None)
        on_node = wait_for(first_prediction_on_a_node, 300, "a cell's first prediction on the node", 0.05)
        child = next(p for p in ray_cluster.processes()
                     if "harness.measure.worker" in " ".join(p.cmdline()) and str(on_node.parent) in " ".join(p.cmdline()))
        child.suspend()
        assert on_node.read_bytes().count(b"\n") == 1  # frozen mid-cell: 1 of its 2 samples done
        at_driver = results / on_node.parent.name / "predictions.jsonl"
        wait_for(lambda: at_driver.is_file() and at_driver.read_bytes().count(b"\n") == 1, 60,
                 "the first prediction streamed back to the driver")
        ray_worker = psutil.Process(child.ppid())
        assert "run_cell" in " ".join([ray_worker.name(), *ray_worker.cmdline()])
        ray_worker.kill()
        psutil.wait_procs([child], timeout=30)
        assert not child.is_running(), "the measured child outlived its Ray worker"
        output, _ = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=30)
    return {"output": output, "returncode": driver.returncode, "results": results, "sweep": sweep,
            "killed_run": on_node.parent.name, "killed_pid": ray_worker.pid}


@pytest.mark.slow
@pytest.mark.heavy
def test_ray_sweep_gives_the_local_samples_and_metrics(ray_sweep_with_a_kill, local_sweep, ray_cluster):
    run = ray_sweep_with_a_kill
    assert run["returncode"] == 0, run["output"]
    local = {r["sweep_cell"]: r for r in records(local_sweep["results"]).values()}
    remote = records(run["results"])
    assert sorted(r["candidate"] for r in remote.values()) == ["baseline", "baseline+prune:llm:drop=1"]
    for run_id, record in remote.items():
        twin = local[record["sweep_cell"]]  # the same cell key as the local executor's run
        assert record["status"] == twin["status"] == "ok"
        for suite, block in record["suites"].items():
            assert block["metrics"] == twin["suites"][suite]["metrics"]
            assert block["n_samples"] == twin["suites"][suite]["n_samples"]
        ray_run, local_run = run["results"] / run_id, local_sweep["results"] / twin["run_id"]
        assert sorted(sample_ids(ray_run)) == sorted(sample_ids(local_run))
        # Measured on the node that declares the custom resource, and the record says so.
        executor = record["executor"]
        assert executor["name"] == "ray" and executor["device_kind"] == "testbox"
        assert executor["assigned_resources"].get("device:testbox") == 1 and executor["node_ip"] == "127.0.0.2"
        assert executor["node_id"] and executor["hostname"] == record["environment"]["hostname"]
        assert json.loads((ray_run / "job.json").read_text())["run_dir"] == str(ray_run)  # the driver's folder
    assert "Ranked together" in run["output"]
    again = ray_sweep(ray_cluster, run["sweep"], run["results"])
    assert again.returncode == 0 and "2 finished already" in again.stdout and "running" not in again.stdout


@pytest.mark.slow
@pytest.mark.heavy
def test_ray_worker_killed_mid_cell_is_retried_from_its_partial_run(ray_sweep_with_a_kill):
    run = ray_sweep_with_a_kill
    assert "worker lost (WorkerCrashedError" in run["output"]
    assert "retrying once, from 1 prediction(s) already received" in run["output"]
    run_dir = run["results"] / run["killed_run"]  # the same run folder, continued
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "ok" and record["suites"]["asr"]["n_samples"] == 2
    ids = sample_ids(run_dir)
    assert len(ids) == len(set(ids)) == 2  # every sample exactly once
    executor = record["executor"]
    assert executor["attempt"] == 2 and len(executor["earlier_attempts"]) == 1
    first = executor["earlier_attempts"][0]
    assert first["worker_pid"] == run["killed_pid"] and "WorkerCrashedError" in first["outcome"]
    others = [r for r in records(run["results"]).values() if r["run_id"] != run["killed_run"]]
    assert [r["executor"]["attempt"] for r in others] == [1]


@pytest.mark.slow
@pytest.mark.heavy
def test_ray_cell_that_cannot_be_placed_names_the_missing_resource(ray_cluster, tmp_path):
    sweep = write(tmp_path / "one.toml", RAY_SWEEP.replace('"", ', ""))
    start = time.monotonic()
    out = ray_sweep(ray_cluster, sweep, tmp_path / "r", "--device-kind", "nosuch", "--placement-timeout-s", "1",
                    timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "could not be placed within 1 s: no node has resource 'device:nosuch'" in out.stdout
    assert "device:testbox" in out.stdout  # what the live nodes do offer
    assert time.monotonic() - start < 110
