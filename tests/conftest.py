"""Shared fixtures: an isolated model cache, demo paths, and helpers for real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Under pytest-xdist (`-n 3`, the README's test command) each worker is a process of its own
# beside the others on the same cores: torch's and OpenMP's default of one thread per core would
# oversubscribe them. One thread each; the measured children pin their own count (`--threads`).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Tests build the tiny checkpoint into their own cache unless one is given (CI reuses it).
    xdist's workers share one (builds are atomic: harness.paths.build_once), so the checkpoints
    and the Whisper conversion are made once, not once per worker."""
    if "LALM_BENCH_CACHE" not in os.environ:
        root = tmp_path_factory.getbasetemp()
        cache = root.parent / "cache" if XDIST_WORKER else root / "cache"
        cache.mkdir(exist_ok=True)
        os.environ["LALM_BENCH_CACHE"] = str(cache)
    return Path(os.environ["LALM_BENCH_CACHE"])


def bench(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `python bench.py ARGS` as a user would, in a real subprocess."""
    return subprocess.run(
        [sys.executable, str(REPO / "bench.py"), *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


_LOADED: dict = {}


def loaded(name: str):
    """A built-in candidate built, prepared and loaded on the CPU once per test process."""
    if name not in _LOADED:
        from harness.registry import build, resolve

        candidate = build(resolve(name))
        candidate.prepare()
        candidate.load("cpu")
        _LOADED[name] = candidate
    return _LOADED[name]


@pytest.fixture(scope="session")
def whisper_tiny_hf_run(tmp_path_factory, model_cache) -> subprocess.CompletedProcess:
    """One real `bench.py run -c whisper-tiny-hf` on 3 demo clips (asr, 1 warm-up), shared by the
    tests that check its record and those that compare other paths against its transcripts."""
    results = tmp_path_factory.mktemp("whisper_tiny_hf")
    return bench("run", "-c", "whisper-tiny-hf", "--limit", "3", "--warmup", "1", "--results", str(results))


@pytest.fixture(scope="session")
def whisper_tiny_run(tmp_path_factory, model_cache) -> subprocess.CompletedProcess:
    """One real `bench.py run -c whisper-tiny` on the first 6 demo clips (harness/data/demo_data/asr.json,
    no warm-up), shared by the tests that compare another path's metrics against it."""
    results = tmp_path_factory.mktemp("whisper_tiny")
    return bench("run", "-c", "whisper-tiny", "--limit", "6", "--warmup", "0", "--results", str(results))


def run_record_path(stdout: str) -> Path:
    for line in stdout.splitlines():
        if line.startswith("run record: "):
            return Path(line.removeprefix("run record: ").strip())
    raise AssertionError(f"no run record line in output:\n{stdout}")


# A third-party candidate, installed as a real distribution by `plugin_site`. Sample ids script
# its behaviour: "boom" raises, "crash" exits, "sigkill" dies as the OOM killer would kill it.
PLUGIN = '''
import os
import signal
import time
from harness.candidate import Candidate
from harness.types import Generation


class EchoCandidate(Candidate):
    """Echo test plugin: answers two words, one token at a time."""

    tasks = frozenset({"asr"})

    def imports_torch(self):
        return False  # no framework: its measured child skips importing torch and transformers

    def load(self, device):
        self.device = device

    def generate(self, request, on_token):
        if request.sample_id == "boom":
            raise RuntimeError("scripted failure")
        if request.sample_id == "crash":
            os._exit(3)
        if request.sample_id == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if request.sample_id == "hang":
            time.sleep(600)
        for _ in range(2):
            time.sleep(0.005)
            on_token()
        return Generation(text="hello world")
'''


def install_distribution(site: Path, module: str, code: str, entry_points: str) -> dict[str, str]:
    """A real installed distribution (module + dist-info with entry_points.txt) in `site`, as pip
    would lay it out; returns the environment that puts it on a child's path."""
    (site / f"{module}.py").write_text(code)
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return {"PYTHONPATH": f"{site}:{REPO}"}


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory):
    return install_distribution(tmp_path_factory.mktemp("site"), "lbplugin_echo", PLUGIN,
                                "[lalm_bench.candidates]\necho = lbplugin_echo:EchoCandidate\n")


def pytest_ignore_collect(collection_path, config):
    """tests/benchmarks are timing-sensitive: collected only when named on the command line."""
    bench_dir = Path(__file__).parent / "benchmarks"
    if collection_path != bench_dir:
        return None
    base = config.invocation_params.dir
    asked = [(base / arg.split("::")[0]).resolve() for arg in config.args]
    return not any(p == bench_dir or bench_dir in p.parents for p in asked)


# Modules that take longest (measured with `--durations=0`, 2026-12-04), handed out first: xdist
# gives each module to one worker (--dist loadscope), and a long module started last would leave
# the other workers idle while it finishes. Modules not named keep their order after these.
LONGEST_MODULES = (
    "test_sweep.py", "test_builtin_runs.py", "test_whisper_hf.py", "test_export.py", "test_faults.py",
    "test_compression_whisper.py", "test_serve.py", "test_openai_family.py", "test_quality_pass.py",
    "test_salmonn_original_cli.py", "test_suites_plugin.py", "test_long_audio.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a module kept
