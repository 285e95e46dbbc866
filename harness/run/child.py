"""The measured child's process: its environment, its start, its death with the parent, its exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from records import files

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["HF_HUB_OFFLINE"] = "1"  # weights come from local folders only
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def die_with_parent() -> None:
    """In the child (before exec, or first thing): if the parent is killed, the kernel kills the child too, so a
    killed `bench.py` never leaves a model process writing into its run folder."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(args: list[str], run_dir: Path, threads: int, deadline: float | None, total: int, progress: bool):
    """Runs the child, shows progress from the predictions file, returns (returncode, timed_out)."""
    log = open(run_dir / "worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.measure.worker", *args],
        stdout=log, stderr=subprocess.STDOUT, env=child_env(threads), cwd=REPO_ROOT,
        preexec_fn=die_with_parent,
    )
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="samples", unit="sample", file=sys.stderr, leave=False,
                   disable=not sys.stderr.isatty())
    timed_out = False
    try:
        while proc.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)
                timed_out = True
                proc.wait()
                break
            if bar is not None:
                bar.n = len(files.read_jsonl(run_dir / files.PREDICTIONS_FILE))
                bar.refresh()
            try:  # returns as soon as the child exits (a plain sleep cost up to 0.5 s per child)
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        raise
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return proc.returncode, timed_out


def describe_exit(returncode: int, timed_out: bool) -> str | None:
    if timed_out:
        return "killed after exceeding --timeout-s"
    if returncode == 0:
        return None
    if returncode < 0:
        name = signal.Signals(-returncode).name
        why = " (the out-of-memory killer sends this)" if name == "SIGKILL" else ""
        return f"child killed by {name}{why}"
    return f"child exited with status {returncode}; see worker.log"
