"""The parent side of a run: plan it, start the measured child, score, write run.json.

The parent never loads a model. It validates the data, writes a job file, runs the child
(`harness.worker`) in a fresh interpreter with pinned threads, and turns the child's
predictions into the run record, even when the child crashed half-way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness import environment, long_audio, prompts, quality_pass, repeats, store
from harness.candidate import overrides
from harness.data import DataError, Problem, load_annotation_json
from harness.library_logs import library_logs_to
from harness.protocols import check_protocol
from harness.registry import CandidateSpec, build, resolve
from harness.scoring import efficiency_block, run_coverage, score_suites
from harness.suites import SUITES, Suite
from harness.types import Sample
from harness.worker import SAMPLE_TIMEOUT_EXIT, WORKER_FILE

SCHEMA_VERSION = 1
JOB_FILE = "job.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


class RunError(Exception):
    """A user-facing problem that stops a run before the model loads."""


@dataclass
class RunOptions:
    candidate: str
    data: Path | None = None
    suites: list[str] | None = None
    limit: int | None = None
    device: str = "auto"
    threads: int = 1
    warmup: int = 3
    results: Path = Path("results")
    audio_root: Path | None = None
    data_format: str | None = None  # json | librispeech | clotho | audiocaps | hf; None: detected
    audio_dir: Path | None = None  # audio folder of a Clotho / AudioCaps CSV
    aac_cache: Path | None = None  # aac-metrics cache folder holding the SPICE jars
    skip_invalid: bool = False
    timeout_s: float | None = None
    progress: bool = True
    protocol: str = "default"  # measurement protocol: default | nota2025 (harness/protocols.py)
    sample_timeout_s: float | None = None
    repeat: int = 1  # timed passes in fresh children; latency and memory are their medians
    batch_size: int = 1  # > 1: batched, untimed quality pass, then batch-1 timing (harness/quality_pass.py)
    efficiency_samples: int = 50  # with batch_size > 1: samples timed at batch 1, per suite
    prompts: str = "suite"  # suite: the suites' (competition) prompts | model: each model's own (harness/prompts.py)
    long_audio: str | None = None  # chunk | truncate | fail; None: each suite's default (harness/long_audio.py)
    sweep_cell: str | None = None  # the sweep cell this run measures (harness/sweep.py); None outside sweeps

    def long_audio_for(self, suite: Suite) -> str:
        return self.long_audio or suite.long_audio


@dataclass
class SuitePlan:
    suite: Suite
    dataset: str
    samples: list = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # copied into the suite's run.json block
    aac_cache: Path | None = None  # where SPICE's jars were looked for (aac suite)


def plan(options: RunOptions, spec: CandidateSpec, tasks: frozenset[str]) -> list[SuitePlan]:
    """Which samples of which suites to run; raises RunError/DataError before anything loads."""
    from harness.loaders import load_data
    from harness.metrics import spice_status

    if options.suites:
        unsupported = [s for s in options.suites if s not in tasks]
        if unsupported:
            raise RunError(
                f"candidate {spec.name!r} does not do {', '.join(unsupported)} (it does: {', '.join(sorted(tasks))})"
            )
    if options.data is None:
        wanted = options.suites or [s for s in SUITES if s in tasks and SUITES[s].demo_file]
        plans = []
        for name in wanted:
            if SUITES[name].demo_file is None:
                raise RunError(f"suite {name!r} has no demo data; pass --data")
            samples, problems = load_annotation_json(SUITES[name].demo_file)
            if problems:
                raise DataError(SUITES[name].demo_file, problems)
            plans.append(SuitePlan(SUITES[name], f"demo:{name}", [s for s in samples if s.task == name]))
    else:
        samples, problems = load_data(options.data, options.data_format, options.audio_root, options.audio_dir)
        if problems and not options.skip_invalid:
            raise DataError(Path(options.data), problems)
        present = {s.task for s in samples} | {p.suite for p in problems if p.suite}
        wanted = options.suites or [s for s in SUITES if s in present and s in tasks]
        plans = [
            SuitePlan(
                SUITES[name],
                str(options.data),
                [s for s in samples if s.task == name],
                [p for p in problems if p.suite == name],
            )
            for name in wanted
        ]
        if not plans:
            raise RunError(f"{options.data}: holds no task that {spec.name!r} can do ({', '.join(sorted(tasks))})")
    if options.limit is not None:
        for p in plans:
            p.samples = p.samples[: options.limit]
    for p in plans:
        if p.suite.name == "aac" and options.protocol == "default":
            # Detected now, before the model loads, so a long run does not end in a surprise.
            p.aac_cache = options.aac_cache
            found, reason = spice_status(options.aac_cache)
            if found is None and options.progress:
                print(f"note: {reason}", file=sys.stderr)
    return plans


def _child_env(threads: int) -> dict[str, str]:
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


def _spawn(args: list[str], run_dir: Path, threads: int, deadline: float | None, total: int, progress: bool):
    """Runs the child, shows progress from the predictions file, returns (returncode, timed_out)."""
    log = open(run_dir / "worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.worker", *args],
        stdout=log, stderr=subprocess.STDOUT, env=_child_env(threads), cwd=REPO_ROOT,
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
                bar.n = len(store.read_jsonl(run_dir / store.PREDICTIONS_FILE))
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


def execute(options: RunOptions, spec: CandidateSpec | None = None,
            record_extra: dict | None = None) -> tuple[Path, dict]:
    """Runs `options.candidate` (or `spec`, a candidate built elsewhere, e.g. a sweep's recipe
    variant); `record_extra` keys are added to run.json (e.g. which executor and node ran it)."""
    check_protocol(options.protocol)
    if options.batch_size > 1 and options.protocol != "default":
        raise RunError(f"--batch-size applies to the default protocol only; {options.protocol} times its own "
                       "requests (run it with --batch-size 1)")
    prompts.check_mode(options.prompts)
    if options.long_audio is not None:
        long_audio.check_mode(options.long_audio)
    spec = spec or resolve(options.candidate)
    candidate = build(spec)  # cheap: no weights yet; tells us the tasks
    tasks = frozenset(spec.tasks or candidate.tasks)
    plans = plan(options, spec, tasks)
    run_id, run_dir = store.new_run_dir(Path(options.results), spec.name)
    job = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "spec": spec.to_dict(),
        "device": options.device,
        "protocol": options.protocol,
        "nota_prompt": SUITES["asr"].prompt,
        # nota2025 measures without warm-up; its quality loop is not timed for ranking either.
        "warmup": 0 if options.protocol == "nota2025" else options.warmup,
        "sample_timeout_s": options.sample_timeout_s,
        "prompts": options.prompts,
        "suites": [
            {
                "name": p.suite.name,
                "prompt": p.suite.prompt,
                "max_new_tokens": p.suite.max_new_tokens,
                "min_audio_s": p.suite.min_audio_s,
                "long_audio": options.long_audio_for(p.suite),
                "dataset": p.dataset,
                "samples": [
                    {"sample_id": s.sample_id, "audio_path": s.audio_path, "references": s.references}
                    for s in p.samples
                ],
                "skipped": [{"where": q.where, "reason": q.reason, "sample_id": q.sample_id, "references": q.references}
                            for q in p.skipped],
            }
            for p in plans
        ],
    }
    if options.batch_size > 1:
        _plan_batched(job, options)
        job["batched"] = overrides(candidate, "generate_batch")
    store.write_json_atomic(run_dir / JOB_FILE, job)
    return _run_and_record(run_dir, job, candidate, options, plans, record_extra)


def _plan_batched(job: dict, options: RunOptions) -> None:
    """Clip durations (headers only) for length-sorted batches, and the samples timed at batch 1,
    chosen now so that the job file (and a resumed run) holds them."""
    from harness.data import audio_duration_s
    from harness.quality_pass import select_for_timing

    job["batch_size"] = options.batch_size
    job["efficiency_samples"] = options.efficiency_samples
    job["timed_samples"] = {}
    for suite in job["suites"]:
        for sample in suite["samples"]:
            sample["duration_s"] = audio_duration_s(sample["audio_path"])
        durations = [(s["sample_id"], s["duration_s"]) for s in suite["samples"]]
        job["timed_samples"][suite["name"]] = select_for_timing(durations, options.efficiency_samples, suite["name"])


def resume(results: Path, run_id: str, progress: bool = True, record_extra: dict | None = None) -> tuple[Path, dict]:
    """Continues a run from its job file: samples already in predictions.jsonl are kept, the rest run."""
    run_dir = _find_run(Path(results), run_id)
    job = json.loads((run_dir / JOB_FILE).read_text(encoding="utf-8"))
    if Path(job["run_dir"]).resolve() != run_dir.resolve():
        # The folder was moved or copied (e.g. to another machine): the child writes where the job says.
        job["run_dir"] = str(run_dir)
        store.write_json_atomic(run_dir / JOB_FILE, job)
    saved = dict(job["options"])
    saved.setdefault("protocol", saved.pop("profile", "default"))  # job files written before the rename
    options = RunOptions(**{**saved, "progress": progress})
    spec = CandidateSpec(**job["spec"])
    return _run_and_record(run_dir, job, build(spec), options, plans_from_job(job, options.aac_cache), record_extra)


def plans_from_job(job: dict, aac_cache: Path | str | None = None) -> list[SuitePlan]:
    """The suite plans a job file holds: its planned samples with their references, and the
    samples skipped as invalid."""
    return [
        SuitePlan(
            SUITES[suite["name"]],
            suite["dataset"],
            [Sample(s["sample_id"], suite["name"], s["audio_path"], s["references"]) for s in suite["samples"]],
            [Problem(q["where"], q["reason"], q["sample_id"], suite["name"], q.get("references") or [])
             for q in suite["skipped"]],
            aac_cache=Path(aac_cache) if aac_cache else None,
        )
        for suite in job["suites"]
    ]


def _find_run(results: Path, run_id: str) -> Path:
    if run_id == "latest":
        runs = sorted(p for p in results.glob("*") if (p / JOB_FILE).is_file()) if results.is_dir() else []
        if not runs:
            raise RunError(f"no run to resume in {results}")
        return runs[-1]
    run_dir = Path(run_id) if Path(run_id).is_dir() else results / run_id
    if not (run_dir / JOB_FILE).is_file():
        raise RunError(f"no run {run_id!r} to resume in {results} (looked for {run_dir / JOB_FILE})")
    return run_dir


def _run_and_record(run_dir: Path, job: dict, candidate, options: RunOptions, plans,
                    record_extra: dict | None = None) -> tuple[Path, dict]:
    """Runs the child (restarting it after a per-sample timeout) and writes run.json, always."""
    job_path = run_dir / JOB_FILE
    total = sum(len(p.samples) for p in plans)
    deadline = time.monotonic() + options.timeout_s if options.timeout_s else None
    error = None
    restarts = 0
    if overrides(candidate, "prepare"):
        code, timed_out = _spawn(["--prepare", str(job_path)], run_dir, options.threads, None, 0, False)
        if describe_exit(code, timed_out):
            error = f"prepare step failed: {describe_exit(code, timed_out)}"
    while error is None:
        code, timed_out = _spawn([str(job_path)], run_dir, options.threads, deadline, total, options.progress)
        # A hung sample was recorded as failed by the child; go on in a fresh one (bounded).
        if code == SAMPLE_TIMEOUT_EXIT and not timed_out and restarts < total:
            restarts += 1
            continue
        error = describe_exit(code, timed_out)
        break
    repeat_errors = _run_repeats(run_dir, job, options, deadline) if error is None and options.repeat > 1 else []
    with library_logs_to(run_dir / "worker.log"):  # scoring imports aac-metrics -> torch -> torchao chatter
        record = build_record(job["run_id"], run_dir, CandidateSpec(**job["spec"]), options, plans, job["created_at"],
                              error, job)
        if options.repeat > 1 and error is None:
            device = record["environment"]["device"]
            record["efficiency"] = _with_repeats(record["efficiency"], run_dir, options, device, repeat_errors)
    record["restarts_after_sample_timeout"] = restarts
    record.update(record_extra or {})
    store.write_json_atomic(run_dir / store.RUN_FILE, record)
    return run_dir, record


def _run_repeats(run_dir: Path, job: dict, options: RunOptions, deadline: float | None) -> list[str]:
    """Repeats 2..N of the timed pass, each in a fresh child; a failed repeat is reported, not fatal."""
    errors = []
    for repeat_dir in repeats.repeat_dirs(run_dir, options.repeat):
        if (repeat_dir / WORKER_FILE).is_file():  # done before an interruption (resume)
            continue
        job_path = repeats.write_repeat_job(run_dir, job, repeat_dir)
        code, timed_out = _spawn([str(job_path)], repeat_dir, options.threads, deadline, 0, False)
        problem = describe_exit(code, timed_out)
        if problem:
            errors.append(f"repeat {repeat_dir.name}: {problem}")
    return errors


def _with_repeats(first: dict, run_dir: Path, options: RunOptions, device: str, errors: list[str]) -> dict:
    others = []
    for repeat_dir in repeats.repeat_dirs(run_dir, options.repeat):
        predictions, worker = repeats.read_repeat(repeat_dir, options.batch_size > 1)
        if worker.get("status") == "ok":
            others.append(efficiency_block(predictions, worker, device, options.protocol))
    return repeats.summarize(first, others, errors)


def build_record(run_id, run_dir: Path, spec, options: RunOptions, plans, created_at, error,
                 job: dict | None = None) -> dict:
    predictions = store.repair_jsonl(run_dir / store.PREDICTIONS_FILE)
    worker_path = run_dir / WORKER_FILE
    worker = json.loads(worker_path.read_text()) if worker_path.is_file() else {}
    error = worker.get("error") or error  # the child's own reason (e.g. "load failed: ...") says more
    batched = job is not None and job.get("batch_size", 1) > 1
    # A batched run's predictions are untimed: efficiency comes from its batch-1 timed requests only.
    timed = quality_pass.timed_records(run_dir) if batched else predictions
    suites = score_suites(plans, predictions, options.protocol, timed)
    _add_inputs(suites, plans, predictions, worker, options, run_dir)
    done = sum(s["n_predicted"] for s in suites.values())
    planned = sum(len(p.samples) for p in plans)
    status = "ok" if error is None and done == planned else ("partial" if done else "failed")
    if status == "ok" and planned and not any(s["n_scored"] for s in suites.values()):
        status, error = "failed", "every sample failed; see suites.*.failures"
    device = worker.get("device") or options.device
    efficiency = efficiency_block(timed, worker, device, options.protocol)
    if batched:
        efficiency.update(quality_pass.record_block(run_dir, job, worker, predictions, timed))
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "candidate": spec.name,
        "candidate_spec": spec.to_dict(),
        # Said explicitly, since both let a checkpoint run code on this machine.
        "trust": {
            "trust_remote_code": bool(spec.options.get("trust_remote_code", False)),
            "allow_pickle": bool(spec.options.get("allow_pickle", False)),
        },
        "recipe_applied": worker.get("recipe_applied"),
        "candidate_info": worker.get("candidate_info"),  # the candidate's run_info() (e.g. a served model's probe)
        "calibration_ids": worker.get("calibration_ids"),
        "protocol": options.protocol,
        "sweep_cell": options.sweep_cell,
        "created_at": created_at,
        "status": status,
        "error": error,
        "settings": {
            "device": options.device,
            "threads": options.threads,
            "warmup": options.warmup,
            "limit": options.limit,
            "data": str(options.data) if options.data else "demo",
            "data_format": options.data_format,
            "audio_dir": str(options.audio_dir) if options.audio_dir else None,
            "aac_cache": str(options.aac_cache) if options.aac_cache else None,
            "skip_invalid": options.skip_invalid,
            "timeout_s": options.timeout_s,
            "repeat": options.repeat,
            "sample_timeout_s": options.sample_timeout_s,
            **({"batch_size": options.batch_size, "efficiency_samples": options.efficiency_samples} if batched else {}),
            "prompts": options.prompts,
            "long_audio": options.long_audio,  # None: each suite's default (see suites.*.long_audio.mode)
        },
        "environment": environment.describe(device, worker.get("device_name", "?"), options.threads, worker.get("gpu")),
        "suites": suites,
        "coverage": run_coverage(suites),  # the lowest suite coverage (harness/scoring.py)
        "efficiency": efficiency,
        "load_s": worker.get("load_s"),
    }


def _add_inputs(suites: dict, plans, predictions: list[dict], worker: dict, options: RunOptions, run_dir: Path) -> None:
    """What each suite's requests carried: the prompt text and its source, and what was done with
    audio longer than the model's window."""
    path = run_dir / prompts.PROMPTS_FILE
    resolved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for p in plans:
        name = p.suite.name
        suites[name]["prompt"] = resolved.get(name) or prompts.unresolved(p.suite.prompt, options.prompts)
        records = [r for r in predictions if r.get("task") == name]
        suites[name]["long_audio"] = long_audio.suite_summary(
            options.long_audio_for(p.suite), records, worker.get("audio_window_s")
        )
