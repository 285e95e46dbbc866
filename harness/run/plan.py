"""Planning a run: which samples of which suites, validated before any model loads."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.data.annotation import load_annotation_json
from harness.data.errors import DataError, Problem
from harness.run.run_options import RunError, RunOptions
from harness.spec import CandidateSpec
from harness.suites import SUITES, Suite
from harness.types import Sample
from records.job import JobFile, JobSample, JobSuite, SkippedSample


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
    from harness.data.loaders import load_data
    from harness.score.metrics import spice_status

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


def job_for(run_id: str, run_dir: Path, options: RunOptions, spec: CandidateSpec, plans: list[SuitePlan],
            native: bool = False) -> JobFile:
    """The job file of a planned run: what the measured child needs, and what a resume re-reads.
    `native`: the candidate has its own long-form algorithm (`--long-audio native`)."""
    return JobFile(
        run_id=run_id,
        run_dir=str(run_dir),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        spec=spec.to_dict(),
        device=options.device,
        protocol=options.protocol,
        nota_prompt=SUITES["asr"].prompt,
        # nota2025 measures without warm-up; its quality loop is not timed for ranking either.
        warmup=0 if options.protocol == "nota2025" else options.warmup,
        sample_timeout_s=options.sample_timeout_s,
        prompts=options.prompts,
        suites=[
            JobSuite(
                name=p.suite.name,
                prompt=p.suite.prompt,
                max_new_tokens=p.suite.max_new_tokens,
                min_audio_s=p.suite.min_audio_s,
                long_audio=options.long_audio_for(p.suite, native, spec.name),
                dataset=p.dataset,
                samples=[JobSample(s.sample_id, s.audio_path, s.references, question=s.question, choices=s.choices,
                                   answer=s.answer, category=s.category) for s in p.samples],
                skipped=[SkippedSample(q.where, q.reason, q.sample_id, q.references) for q in p.skipped],
            )
            for p in plans
        ],
    )


def plan_batched(job: JobFile, options: RunOptions) -> None:
    """Clip durations (headers only) for length-sorted batches, and the samples timed at batch 1,
    chosen now so that the job file (and a resumed run) holds them."""
    from harness.data.audio import audio_duration_s
    from harness.measure.quality_pass import select_for_timing

    job.batch_size = options.batch_size
    job.efficiency_samples = options.efficiency_samples
    job.timed_samples = {}
    for suite in job.suites:
        for sample in suite.samples:
            sample.duration_s = audio_duration_s(sample.audio_path)
        durations = [(s.sample_id, s.duration_s) for s in suite.samples]
        job.timed_samples[suite.name] = select_for_timing(durations, options.efficiency_samples, suite.name)


def plans_from_job(job: JobFile | dict, aac_cache: Path | str | None = None) -> list[SuitePlan]:
    """The suite plans a job file holds: its planned samples with their references, and the
    samples skipped as invalid."""
    job = JobFile.from_dict(job) if isinstance(job, dict) else job
    return [
        SuitePlan(
            SUITES[suite.name],
            suite.dataset,
            [Sample(s.sample_id, suite.name, s.audio_path, s.references, question=s.question, choices=s.choices,
                    answer=s.answer, category=s.category) for s in suite.samples],
            [Problem(q.where, q.reason, q.sample_id, suite.name, q.references) for q in suite.skipped],
            aac_cache=Path(aac_cache) if aac_cache else None,
        )
        for suite in job.suites
    ]
