"""The measured child as named phases: they run in their one order, and a phase called out of
order fails loudly instead of measuring the wrong window. Real code on the null candidate."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from harness.measure.worker import PHASES, ChildRun, PhaseOrderError
from harness.registry import resolve
from harness.run import store
from harness.run.plan import job_for, plan
from harness.run.run_options import RunOptions
from records import files
from records.job import JobFile


def _job(tmp_path) -> JobFile:
    options = RunOptions(candidate="null", suites=["asr"], limit=2, warmup=0, results=tmp_path, progress=False)
    spec = resolve("null")
    plans = plan(options, spec, frozenset({"asr"}))
    run_id, run_dir = store.new_run_dir(tmp_path, spec.name)
    job = job_for(run_id, run_dir, options, spec, plans)
    files.write_job(run_dir / files.JOB_FILE, job)
    return job


def test_a_phase_out_of_order_raises_and_measures_nothing(tmp_path):
    run = ChildRun(_job(tmp_path))
    with pytest.raises(PhaseOrderError, match="'load' out of order: next is 'setup'"):
        run.load()
    run.setup()
    with pytest.raises(PhaseOrderError, match="next is 'preload'"):
        run.baseline()  # the memory baseline before the family's imports would bill them to the model
    assert run.done == ["setup"]
    assert not (run.run_dir / files.WORKER_FILE).exists()


@pytest.fixture
def torch_threads():
    """The child pins torch's threads (import_frameworks); this test runs it in pytest's process."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_phases_run_in_order_and_write_typed_records(tmp_path, torch_threads):
    job = _job(tmp_path)
    run = ChildRun(files.read_job(Path(job.run_dir) / files.JOB_FILE))  # as the child reads it
    assert run.run() == 0
    assert run.done == list(PHASES)
    assert gc.get_freeze_count() == 0  # what `load` froze is handed back when the run ends
    summary = files.read_worker_summary(run.run_dir)
    assert summary.ok and summary.memory["rss_peak_method"]
    lines = files.read_predictions(run.run_dir / files.PREDICTIONS_FILE)
    assert [p.sample_id for p in lines] == [s.sample_id for s in job.suites[0].samples]
    assert all(p.error is None and p.e2e_ms is not None for p in lines)
    # Each line is exactly what the one writer makes of its typed form.
    raw = files.read_jsonl(run.run_dir / files.PREDICTIONS_FILE)
    assert raw == [p.to_dict() for p in lines]


def test_a_candidate_without_torch_gets_a_light_child(tmp_path):
    """The null candidate imports no framework: its child skips torch and transformers (seconds
    per run) and runs on the CPU under --device auto. A real child process, on real clips."""
    import json

    job = _job(tmp_path)
    code = ("import sys, json\nfrom harness.measure import worker\nfrom records import files\n"
            "from pathlib import Path\n"
            "worker.run_job(files.read_job(Path(sys.argv[1])))\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(Path(job.run_dir) / files.JOB_FILE)],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    summary = files.read_worker_summary(Path(job.run_dir))
    assert summary.status == "ok" and summary.device == "cpu"
    assert len(files.read_predictions(Path(job.run_dir) / files.PREDICTIONS_FILE)) == 2


def test_what_is_alive_after_load_is_frozen_and_each_request_s_cycles_are_still_freed():
    """`freeze_survivors` (after load) keeps the collection after each request to what requests
    made; it must still free their reference cycles, or they would count in the next peak."""
    code = (
        "import gc, weakref\n"
        "from harness.measure.memory import freeze_survivors, release_free_heap\n"
        "class Node: pass\n"
        "loaded = Node(); loaded.me = loaded\n"  # alive at load: frozen
        "freeze_survivors()\n"
        "frozen = gc.get_freeze_count()\n"
        "request = Node(); request.me = request; ref = weakref.ref(request); del request\n"
        "release_free_heap()\n"
        "print(frozen > 0, ref() is None, any(o is loaded for o in gc.get_objects()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    # frozen, the request's cycle freed, and the frozen object out of the collector's lists
    assert out.stdout.split() == ["True", "True", "False"]
