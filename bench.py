"""lalm-bench command line: run candidates, rank them.

Thin on purpose: options are parsed here and the work is done by `harness` and `leaderboard`.
Heavy libraries (torch, transformers) are imported only inside the commands that need them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from leaderboard.render import FORMATS as LEADERBOARD_FORMATS

if TYPE_CHECKING:
    from records.run_record import RunRecord

DEFAULT_RESULTS = Path("results")


class ChoiceOf(click.Choice):
    """The choices of an option, read from the constant of the module that owns them when first
    needed (parsing, --help), so there is one list, and a command that never uses the option
    (`leaderboard`) never imports the harness."""

    def __init__(self, module: str, name: str, case_sensitive: bool = True) -> None:
        self.source = (module, name)
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:
        module, name = self.source
        return tuple(getattr(importlib.import_module(module), name))


DATA_FORMATS = ChoiceOf("harness.data", "DATA_FORMATS")


def _fail(message: str) -> None:
    """A user error: one clear line on stderr, non-zero exit, no traceback."""
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Benchmark lightweight audio-language models: quality (WER, SPIDEr), latency, memory."""


@cli.command()
@click.option("--candidate", "-c", help="Registered name or path to a candidate .toml file.")
@click.option("--data", type=click.Path(path_type=Path),
              help="Annotation JSON, LibriSpeech folder, Clotho/AudioCaps CSV, HF dataset folder or parquet "
                   "(default: embedded demo).")
@click.option("--format", "data_format", type=DATA_FORMATS,
              help="Format of --data (default: detected from the path).")
@click.option("--suite", "suites", help="Comma-separated suites to run, e.g. asr,aac (default: all the data has).")
@click.option("--limit", type=click.IntRange(min=1), help="Run at most N samples per suite.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads for the measured process.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True, help="Untimed warm-up requests.")
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--audio-root", type=click.Path(path_type=Path), help="Folder relative audio paths resolve against.")
@click.option("--audio-dir", type=click.Path(path_type=Path),
              help="Audio folder of a Clotho or AudioCaps CSV (default: the CSV's folder).")
@click.option("--aac-cache", type=click.Path(path_type=Path),
              help="aac-metrics cache folder holding the SPICE jars (default: aac-metrics' own, ~/.cache).")
@click.option("--skip-invalid", is_flag=True, help="Run valid samples; record invalid ones as failed.")
@click.option("--timeout-s", type=float, help="Kill the measured process after this many seconds.")
@click.option("--protocol", type=ChoiceOf("harness.run.run_options", "PROTOCOLS"), default="default", show_default=True,
              help="Measurement protocol: ours (default) or the competition organiser's evaluator (nota2025).")
@click.option("--sample-timeout-s", type=float,
              help="A sample running longer is recorded as failed and the run goes on in a fresh process.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the timed pass N times in fresh processes; latency and memory are the medians, "
                   "their spread is recorded (efficiency.repeats).")
@click.option("--prompts", type=ChoiceOf("harness.suites", "PROMPT_MODES"), default="suite", show_default=True,
              help="suite: the suites' competition prompts (what the leaderboard compares); model: the prompt each "
                   "model's authors publish, where the candidate has one (the record says which was used).")
@click.option("--long-audio", type=ChoiceOf("harness.suites", "LONG_AUDIO_MODES"),
              help="Audio longer than the model's window: native (the model's own long-form algorithm, where it "
                   "has one), chunk (overlapping windows, transcripts merged), truncate (first window only) or fail "
                   "the sample. Default: native for asr where the candidate has it, else chunk; truncate for aac.")
@click.option("--audio-loading", type=ChoiceOf("harness.data.audio", "AUDIO_LOADINGS"), default="harness",
              show_default=True,
              help="harness: mix to mono, resample with scipy; organisers: as the NOTA 2025 evaluator (first channel, "
                   "padded to 1 s, soxr_hq, float64), for numbers equal to theirs.")
@click.option("--resume", "resume_id", metavar="RUN_ID|latest",
              help="Continue an interrupted run in --results; samples already predicted are kept.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="N > 1: an untimed quality pass in batches of N, then --efficiency-samples timed at batch 1.")
@click.option("--efficiency-samples", type=click.IntRange(min=1), default=50, show_default=True,
              help="With --batch-size > 1: samples per suite timed at batch 1, spread over clip lengths.")
@click.option("--judge", type=click.Path(path_type=Path),
              help="Judge file (TOML) of the LLM judge that scores the qa suite (docs/guides/tasks.md).")
def run(candidate, suites, resume_id, results, **options) -> None:
    """Run one candidate on the suites and write `results/<run_id>/run.json`."""
    # Every other option is named as RunOptions' field: a new run option is a field (checked in
    # harness/run/run_options.py) and its click option above, nothing else.
    from harness.data.errors import DataError
    from harness.registry import RegistryError
    from harness.run.execute import execute, resume
    from harness.run.run_options import RunError, RunOptions
    from harness.suites import parse_suite_list

    if not candidate and not resume_id:
        _fail("--candidate is required (or --resume RUN_ID|latest to continue a run)")
    try:
        if resume_id:
            run_dir, record = resume(results, resume_id)
        else:
            run_options = RunOptions(candidate=candidate, suites=parse_suite_list(suites), results=results, **options)
            run_dir, record = execute(run_options)
    except (RegistryError, RunError, ValueError) as err:
        _fail(str(err))
    except DataError as err:
        _fail(f"{err}\nFix the file, or pass --skip-invalid to run the valid samples and record the rest as failed.")
    click.echo(_summary(record))
    click.echo(f"run record: {run_dir / 'run.json'}")
    if record.status != "ok":
        log = run_dir / "worker.log"
        if record.error and log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            click.echo(f"last lines of {log}:\n" + "\n".join(tail), err=True)
        sys.exit(1)


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _input_notes(suite: dict) -> list[str]:
    """What the suite's requests carried, when it is not the plain default."""
    lines = []
    prompt = suite.get("prompt") or {}
    if prompt.get("source") == "model":
        lines.append(f"    prompt: the model's own: {prompt.get('text')!r}")
    la = suite.get("long_audio") or {}
    if la.get("n_longer_than_window"):
        lines.append(
            f"    long audio ({la['mode']}, window {la['window_s']:g} s): {la['n_longer_than_window']} longer, "
            + (f"{la['n_native']} native, " if la.get("n_native") else "")
            + f"{la['n_chunked']} chunked, {la['n_truncated']} truncated, {la['n_refused']} refused"
        )
    return lines


def _summary(record: RunRecord) -> str:
    lines = [f"{record.candidate}  run {record.run_id}  status {record.status}"]
    if record.error:
        lines.append(f"  error: {record.error}")
    for name, suite in record.suites.items():
        m = suite["metrics"]
        if name == "asr":
            quality = f"WER {_fmt(m.get('wer'))}  CER {_fmt(m.get('cer'))}"
        elif name == "aac":
            quality = f"CIDEr-D {_fmt(m.get('cider_d'), '.4f')}  SPIDEr {_fmt(m.get('spider'), '.4f')}"
        elif name == "mcq":
            quality = (f"accuracy {_fmt(m.get('accuracy'))} (chance {_fmt(m.get('chance'))}), "
                       f"{m.get('n_unparsed', 0)} unparsed")
        elif name == "qa":
            judge = (suite.get("judge") or {}).get("model")
            quality = (f"judge_score {_fmt(m.get('judge_score'), '.2f')} of 10, {m.get('n_unjudged', 0)} unjudged"
                       + (f" (judge {judge})" if judge else ""))
        else:
            quality = ", ".join(f"{k} {_fmt(v)}" for k, v in m.items() if isinstance(v, float))
        coverage = suite.get("coverage")
        cover = f" (coverage {coverage:.1%}: missing predictions scored as empty)" if coverage is not None and coverage < 1 else ""
        lines.append(f"  {name}: {suite['n_samples']} samples, {suite['n_failed']} failed{cover}; {quality}")
        lines += [f"    note: {n}" for n in suite.get("notices", [])]
        lines += _input_notes(suite)
    eff = record.efficiency
    repeats = eff.get("repeats") or {}

    def part(key: str) -> float | None:  # with --repeat: the median over the runs, as latency is
        return (repeats.get(key) or {}).get("p50", eff[key]["p50"])

    over = f", medians of {repeats['n']} runs" if repeats.get("n", 1) > 1 else ""
    lines.append(
        f"  latency {_fmt(eff.get('latency_ms'), '.1f')} ms (TTFT p50 {_fmt(part('ttft_ms'), '.1f')} ms, "
        f"TPOT p50 {_fmt(part('tpot_ms'), '.2f')} ms{over})  peak memory {_fmt(eff.get('peak_memory_mb'), '.1f')} MB"
        f"  weights {_fmt(eff.get('weights_mb'), '.1f')} MB"
    )
    if eff.get("tpot_unavailable_reason"):
        lines.append(f"  note: {eff['tpot_unavailable_reason']}")
    qp = eff.get("quality_pass")
    if qp:
        how = f"batches of {qp['batch_size']}" if qp["batched"] else "one at a time (no generate_batch)"
        lines.append(
            f"  quality pass: {how}, {_fmt(qp['samples_per_s'], '.2f')} samples/s, RTFx {_fmt(qp['rtfx'], '.1f')};"
            f" timed at batch 1: {eff['n_requests']} requests"
        )
    return "\n".join(lines)


@cli.command()
@click.argument("run_id", required=False, metavar="[RUN_ID]")
@click.option("--all", "all_runs", is_flag=True, help="Re-score every finished run in --results.")
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--aac-cache", type=click.Path(path_type=Path),
              help="aac-metrics cache folder holding the SPICE jars (default: the one the run used).")
@click.option("--judge", type=click.Path(path_type=Path),
              help="Judge file for qa answers that have no judgement yet (and for --rejudge).")
@click.option("--rejudge", is_flag=True,
              help="Send every qa answer to the judge again (default: stored judgements are reused, no request).")
def rescore(run_id, all_runs, results, aac_cache, judge, rejudge) -> None:
    """Re-score runs from their predictions.jsonl and job.json with the current metric code.

    Every suite block of run.json is rebuilt (the previous metrics go to `history`); timings and
    memory are never re-measured or changed. Prints what changed per suite and metric. qa
    judgements stored with the predictions are reused (no request) unless --rejudge.
    """
    from harness.commands.rescore import RescoreError, find_run, rescore_run, run_folders

    if bool(run_id) == all_runs:
        _fail("give a RUN_ID (or run folder), or --all for every run in --results")
    try:
        folders = run_folders(results) if all_runs else [find_run(results, run_id)]
    except RescoreError as err:
        _fail(str(err))
    errors = 0
    for folder in folders:
        try:
            result = rescore_run(folder, aac_cache, judge, rejudge)
        except RescoreError as err:
            errors += 1
            click.echo(f"error: {err}", err=True)
            continue
        judged = f" ({result.judge_requests} answer(s) sent to the judge)" if result.judge_requests else ""
        if not result.changed:
            click.echo(f"{result.run_id}: unchanged{judged}")
            continue
        click.echo(f"{result.run_id}: re-scored{judged}")
        for line in result.changes:
            click.echo(f"  {line}")
    if errors:
        _fail(f"{errors} run(s) could not be re-scored (see above)")


@cli.command()
@click.option("--data", required=True, type=click.Path(path_type=Path), help="The dataset to validate.")
@click.option("--format", "data_format", type=DATA_FORMATS,
              help="Data format (default: detected from the path).")
@click.option("--audio-root", type=click.Path(path_type=Path), help="Folder relative audio paths resolve against.")
@click.option("--audio-dir", type=click.Path(path_type=Path), help="Audio folder of a Clotho/AudioCaps CSV.")
def check(data, data_format, audio_root, audio_dir) -> None:
    """Validate a dataset without loading any model: every problem, with its sample id and line."""
    from harness.data.errors import DataError
    from harness.data.loaders import load_data

    try:
        samples, problems = load_data(data, data_format, audio_root, audio_dir)
    except (DataError, ValueError) as err:
        _fail(str(err))
    tasks: dict[str, int] = {}
    for sample in samples:
        tasks[sample.task] = tasks.get(sample.task, 0) + 1
    counts = ", ".join(f"{n} {task}" for task, n in sorted(tasks.items())) or "none"
    click.echo(f"{data}: {len(samples)} valid samples ({counts}), {len(problems)} problem(s)")
    for problem in problems:
        click.echo(f"  {problem}")
    if problems:
        sys.exit(1)


@cli.command()
@click.option("--run", "run_id", required=True, help="Run id (or run folder) to export.")
@click.option("--task", type=ChoiceOf("harness.score.submission", "TASKS"), required=True)
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="CSV to write (default: RUN_DIR/submission-TASK.csv).")
def submit(run_id, task, results, out) -> None:
    """Write the competition's submission CSV (testset_id,text) from a run's predictions."""
    from harness.score.submission import SubmissionError, write_submission

    run_dir = Path(run_id) if Path(run_id).is_dir() else Path(results) / run_id
    if not run_dir.is_dir():
        _fail(f"no run {run_id!r} in {results}")
    out = out or run_dir / f"submission-{task}.csv"
    try:
        n_rows, empty = write_submission(run_dir, task, out)
    except SubmissionError as err:
        _fail(str(err))
    click.echo(f"wrote {out}: {n_rows} rows")
    if empty:
        click.echo(f"warning: {len(empty)} sample(s) have no prediction and an empty text: {', '.join(empty[:10])}",
                   err=True)


@cli.command()
@click.argument("csv_file", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), help="Annotation JSON: every id must appear exactly once.")
@click.option("--task", help="Which annotation task the CSV answers (default: the task of its first id).")
@click.option("--id-pattern", default=r"test\d{4}", show_default=True, help="Regular expression ids must match.")
def validate(csv_file, data, task, id_pattern) -> None:
    """Check a submission CSV: columns, ids, duplicates and (with --data) completeness."""
    import csv as csv_module

    from harness.score.submission import validate_submission

    expected = None
    if data is not None:
        from harness.data.annotation import load_annotation_json
        from harness.data.errors import DataError

        try:
            samples, problems = load_annotation_json(data)
        except DataError as err:
            _fail(str(err))
        entries = samples + [p for p in problems if p.sample_id]
        if task is None and csv_file.is_file():
            rows = list(csv_module.reader(csv_file.read_text(encoding="utf-8-sig").splitlines()))
            first = rows[1][0] if len(rows) > 1 and rows[1] else None
            task = next((getattr(e, "task", None) or e.suite for e in entries if e.sample_id == first), None)
        expected = [e.sample_id for e in entries if task is None or (getattr(e, "task", None) or e.suite) == task]
    problems = validate_submission(csv_file, expected, id_pattern)
    for problem in problems:
        click.echo(problem)
    if problems:
        _fail(f"{csv_file}: {len(problems)} problem(s)")
    click.echo(f"{csv_file}: valid")


@cli.command()
@click.option("--candidate", "-c", required=True, help="Registered name or path to a candidate .toml file.")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--name", help="Name of the exported candidate (default: CANDIDATE-export).")
@click.option("--data", type=click.Path(path_type=Path),
              help="Calibration clips for recipes that need them (prune drop=auto; default: the demo data).")
def export(candidate, out_dir, name, data) -> None:
    """Apply a candidate's recipe once and save a checkpoint that loads already quantized, plus
    OUT_DIR/candidate.toml pointing at it (run it with `run -c OUT_DIR/candidate.toml`)."""
    from harness.commands.export import ExportFailed, export_candidate
    from harness.registry import RegistryError, resolve

    try:
        result = export_candidate(resolve(candidate), out_dir, name=name, data=data)
    except (RegistryError, ExportFailed, ValueError) as err:
        _fail(str(err))
    manifest = result.manifest
    click.echo(f"exported {candidate} ({manifest['format']}, recipe {manifest['baked_recipe']}) to {result.out_dir}")
    click.echo(f"candidate file: {result.candidate_file}")


# The SALMONN-style baseline and its NF4 recipe, then a real-weight pair (docs/results/2026-11-recipe-study.md):
# Whisper tiny.en fp32 and its best recipe, exported pre-quantized, so the first leaderboard shows a real
# trade-off. (faster-whisper's `whisper-tiny` is one `bench.py run -c whisper-tiny` away; in the demo it cost
# a fifth of the time and showed no trade-off the pair does not.)
DEMO_CANDIDATES = ("baseline", "qlora4bit", "whisper-tiny-hf", "whisper-tiny-hf-int8-ctx")
# Samples per suite: the first 10 ASR and captioning clips (of 30 and 16) and all 5 mcq and 3 qa ones. The
# demo shows the table and its intervals within a minute and a half; a run on all the clips measures the
# same way (`bench.py run -c NAME`), with narrower intervals.
DEMO_LIMIT = 10
# The deltas read against a real-weight model: against the random-weight `baseline` (WER 1.0) they said nothing.
DEMO_REFERENCE = "whisper-tiny-hf"


@cli.command()
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--judge", type=click.Path(path_type=Path),
              help="Judge file for the qa suite's LLM judge; without one, qa is shown as n/a (not judged).")
@click.pass_context
def demo(ctx, results, threads, judge) -> None:
    """Run the built-in candidates on the embedded demo data, then print the leaderboard."""
    failed = []
    if judge is None:
        click.echo("note: qa is not judged (no --judge judge.toml): its judge_score is n/a; see docs/guides/tasks.md")
    for name in DEMO_CANDIDATES:
        click.echo(f"== {name}")
        try:
            ctx.invoke(run, candidate=name, results=results, threads=threads, judge=judge, limit=DEMO_LIMIT)
        except SystemExit as exit_:
            if exit_.code:
                failed.append(name)
    click.echo("")
    ctx.invoke(leaderboard, results=results, baseline=DEMO_REFERENCE, ci=True)
    if failed:
        _fail(f"runs that did not finish cleanly: {', '.join(failed)} (see their worker.log)")


_WEIGHTS_HELP = (
    "Weight profile: competition (default: competition weights, memory and latency within the measured noise "
    "share a rank), competition-exact (exact ranks; the default for runs under the nota2025 measurement "
    'protocol), a .toml file, or "wer=1,spider=1,memory=2,latency=2,extra=1".'
)
_MIN_COVERAGE_HELP = ("Leave out runs that predicted less than this share of their planned samples "
                      "(1 = all; default: the weight profile's min_coverage, else none).")


def _leaderboard_sections(results, weights, baseline, mix, min_coverage=None):
    """Load, group and rank the runs under `results`; print the loader's warnings on stderr."""
    import leaderboard as lb

    if not Path(results).is_dir():
        _fail(f"results folder not found: {results} (run `bench.py run --candidate NAME` first)")
    runs, warnings = lb.load_runs(results)
    try:
        sections = lb.build(runs, weights, baseline=baseline, mix=mix, min_coverage=min_coverage)
    except ValueError as err:
        _fail(str(err))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if baseline and sections and all(s.rows[0].reference is None for s in sections if s.rows):
        _fail(f"--baseline {baseline}: no run of that candidate among the ranked runs")
    return sections


@cli.command()
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--format", "fmt", type=click.Choice([*LEADERBOARD_FORMATS, "json"]), default="table", show_default=True)
@click.option("--weights", help=_WEIGHTS_HELP)
@click.option("--baseline", help="Reference candidate for the deltas (default: `baseline` when it has a run).")
@click.option("--ci", is_flag=True,
              help="Show bootstrap intervals, and the spread of repeated timed passes, where runs have them.")
@click.option("--mix", is_flag=True, help="Rank runs that are not comparable together (prints a warning).")
@click.option("--min-coverage", type=click.FloatRange(0, 1), help=_MIN_COVERAGE_HELP)
def leaderboard(results, fmt, weights=None, baseline=None, ci=False, mix=False, min_coverage=None) -> None:
    """Rank the newest run of each candidate by weighted per-criterion ranks.

    Runs are ranked together only when they share the measurement protocol, the device kind
    (and CPU thread count) and the datasets; otherwise each comparable group gets its own table.
    """
    import gc

    # Records are JSON (no reference cycles) and this command only reads them and prints: the
    # cycle collector would walk every record read so far again and again, a fifth of the time
    # over 10,000 runs. Paused, not off, so callers in the same process (tests) keep it.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _leaderboard(results, fmt, weights, baseline, ci, mix, min_coverage)
    finally:
        if was_enabled:
            gc.enable()


def _leaderboard(results, fmt, weights, baseline, ci, mix, min_coverage) -> None:
    import leaderboard as lb

    sections = _leaderboard_sections(results, weights, baseline, mix, min_coverage)
    if fmt == "json":  # tables print their warnings above themselves; JSON on stderr
        for section in sections:
            for warning in section.warnings:
                click.echo(f"warning: {warning}", err=True)
        rows = []
        for section in sections:
            for row, item in zip(section.rows, lb.to_json(section.rows, ci=ci), strict=True):
                rows.append({**item, "protocol": lb.protocol_of(section.run_of(row)), "group": section.index})
        click.echo(json.dumps(rows, indent=2))
        return
    _print_sections(sections, fmt, ci)


def _print_sections(sections, fmt: str = "table", ci: bool = False) -> None:
    import leaderboard as lb

    if not sections:
        click.echo(lb.to_table([], fmt))
    for i, section in enumerate(sections):
        lines = section.warnings + section.header
        if fmt == "csv":
            if len(sections) > 1 or section.warnings:  # plain CSV when there is one table
                click.echo(("\n" if i else "") + "\n".join(f"# {line}" for line in lines))
        else:
            click.echo(("\n" if i else "") + "\n".join(lines) + "\n")
        click.echo(lb.to_table(section.rows, fmt, ci=ci))


@cli.command()
@click.argument("sweep_file", type=click.Path(path_type=Path))
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--dry-run", is_flag=True, help="List the cells (and which are finished already); run nothing.")
@click.option("--executor", type=ChoiceOf("harness.sweep.executors", "EXECUTORS"), default="local", show_default=True,
              help="local: one cell after another here; ray: one Ray task per cell on a Ray cluster.")
@click.option("--ray-address", metavar="ADDR",
              help="Ray cluster to use (e.g. 10.0.0.5:6379; default: $RAY_ADDRESS, else a private one here).")
@click.option("--device-kind", metavar="NAME",
              help='Run every cell on nodes declaring the Ray resource "device:NAME" (latency from that hardware).')
@click.option("--placement-timeout-s", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Fail a Ray task that no live node can take after this long, naming the missing resource.")
@click.option("--weights", help=_WEIGHTS_HELP)
def sweep(sweep_file, results, dry_run, executor, ray_address, device_kind, placement_timeout_s, weights) -> None:
    """Run a matrix of runs from SWEEP_FILE (candidates x recipe variants x datasets x protocols x
    threads); finished cells are skipped, interrupted ones resumed; ends with their leaderboard."""
    from harness.sweep.driver import plan_work, run_sweep, state_path
    from harness.sweep.executors import get_executor
    from harness.sweep.spec import SweepError, load_sweep

    if executor == "local" and (ray_address or device_kind):
        _fail("--ray-address and --device-kind need --executor ray")
    try:
        spec = load_sweep(sweep_file)
        if dry_run:
            work = plan_work(spec.cells, results)
            click.echo(f"sweep {spec.name!r}: {len(work)} cell(s) (results in {results})")
            for i, item in enumerate(work, 1):
                state = {"skip": f"finished: {item.run_id}", "resume": f"resume {item.run_id}", "run": "to run"}
                click.echo(f"{i:>3}. {item.cell.label}  recipe {item.cell.spec.recipe}  cell {item.cell.key}  "
                           f"[{state[item.action]}]")
            return
        ray_options = {"address": ray_address, "device_kind": device_kind, "placement_timeout_s": placement_timeout_s}
        outcomes = run_sweep(spec, results, get_executor(executor, **(ray_options if executor == "ray" else {})),
                             echo=click.echo)
    except (SweepError, ValueError) as err:
        _fail(str(err))
    import leaderboard as lb

    runs = [o.record for o in outcomes if o.record and o.record.status != "failed"]
    click.echo("")
    try:
        _print_sections(lb.build(runs, weights))
    except ValueError as err:
        _fail(str(err))
    failed = [o for o in outcomes if o.state == "failed"]
    counts = {s: sum(o.state == s for o in outcomes) for s in ("ok", "partial", "skipped", "failed")}
    click.echo("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" of {len(outcomes)} cell(s)")
    if failed:
        _fail(f"{len(failed)} cell(s) failed (errors above and in {state_path(results, spec.name)}): " + "; ".join(o.cell.label for o in failed))


@cli.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Samples shown per task.")
def compare(run_a, run_b, results, top) -> None:
    """Compare two runs (run ids, run folders or candidate names): criteria side by side with
    ratios, and the samples whose per-sample quality differs most, with both predictions."""
    from leaderboard.compare import format_comparison, resolve_run, sample_diffs

    try:
        (a, dir_a), (b, dir_b) = resolve_run(run_a, results), resolve_run(run_b, results)
    except ValueError as err:
        _fail(str(err))
    diffs, notes = sample_diffs(dir_a, dir_b, _sample_scorers(), top=top)
    click.echo(format_comparison(a, b, diffs, notes))


def _sample_scorers() -> dict:
    """Per-sample scorers, built on the harness's metrics (its one text normalizer)."""
    from harness.score import metrics  # lazy: only `compare` needs it; it imports no torch at import

    def wer(predictions, references):
        refs = [metrics.normalize_transcript(r[0] if r else "") for r in references]
        hyps = [metrics.normalize_transcript(p) for p in predictions]
        errors, words = metrics.wer_per_sample(refs, hyps)  # one alignment, sums to the corpus WER
        return [float(e) / w if w else None for e, w in zip(errors, words, strict=True)]

    def cider(predictions, references):
        _, cider_d, _ = metrics.aac_text_metrics()  # imports torch: only when captions are compared

        cands = [metrics.normalize_caption(p) for p in predictions]
        refs = [[metrics.normalize_caption(r) for r in rs] or [""] for rs in references]
        if len(cands) < 2:
            raise ValueError("CIDEr-D needs at least 2 clips")
        _, sents = cider_d(cands, refs, return_all_scores=True)
        return [float(x) for x in sents["cider_d"].tolist()]

    return {"asr": ("WER", wer), "aac": ("CIDEr-D", cider)}


@cli.command()
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("report"), show_default=True)
@click.option("--weights", help=_WEIGHTS_HELP)
@click.option("--baseline", help="Reference candidate for the deltas (default: `baseline` when it has a run).")
@click.option("--ci", is_flag=True,
              help="Show bootstrap intervals, and the spread of repeated timed passes, where runs have them.")
@click.option("--mix", is_flag=True, help="Rank runs that are not comparable together (with a warning).")
@click.option("--min-coverage", type=click.FloatRange(0, 1), help=_MIN_COVERAGE_HELP)
def report(results, out, weights, baseline, ci, mix, min_coverage=None) -> None:
    """Write OUT/report.html (table, environments, Pareto plots, load tests) plus leaderboard.md and .csv."""
    from leaderboard.report import write_report
    from leaderboard.results import load_test_runs

    sections = _leaderboard_sections(results, weights, baseline, mix, min_coverage)
    for path in write_report(sections, out, ci=ci, source=str(results), load_records=load_test_runs(results)):
        click.echo(f"wrote {path}")


def _int_list(ctx, param, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, e.g. 1,4,16; got {value!r}") from None


@cli.command()
@click.option("--candidate", "-c", required=True, help="A served candidate (family openai): name or .toml path.")
@click.option("--concurrency", default="1,4,16", show_default=True, callback=_int_list,
              help="Comma-separated concurrency levels, run one after the other.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=32, show_default=True,
              help="Requests per concurrency level.")
@click.option("--duration-s", type=click.FloatRange(min=0, min_open=True),
              help="Per level: start no request after this many seconds (in-flight ones finish).")
@click.option("--data", type=click.Path(path_type=Path), help="Where the audio comes from (default: the demo data).")
@click.option("--suite", help="Which suite's clips and prompt (default: asr when the candidate does it).")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True, help="Untimed requests first.")
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
def load(candidate, concurrency, n_requests, duration_s, data, suite, warmup, results) -> None:
    """Load-test a served candidate: throughput, TTFT/TPOT/ITL percentiles and errors per
    concurrency level; writes `results/<run_id>/run.json` with a `load` block."""
    from harness.registry import RegistryError
    from harness.run.run_options import RunError
    from harness.serve.loadtest import LoadError, LoadOptions, execute

    try:
        options = LoadOptions(candidate=candidate, concurrency=concurrency, requests=n_requests, duration_s=duration_s,
                              data=data, suite=suite, warmup=warmup, results=results)
        run_dir, record = execute(options)
    except (LoadError, RegistryError, RunError, ValueError) as err:
        _fail(str(err))
    click.echo(_load_table(record))
    click.echo(f"run record: {run_dir / 'run.json'}")
    if record.status != "ok":
        click.echo(f"status {record.status}" + (f": {record.error}" if record.error else ""), err=True)
        sys.exit(1)


def _load_table(record: RunRecord) -> str:
    from tabulate import tabulate

    rows = []
    for level in record.load["levels"]:
        ttft, tpot, itl = level["ttft_ms"], level["tpot_ms"], level["itl_chunk_ms"]
        rows.append([
            level["concurrency"], f"{level['ok']}/{level['requests_sent']}", level["errors"],
            _fmt(level["requests_per_s"], ".2f"), _fmt(level["output_tokens_per_s"], ".1f"),
            "/".join(_fmt(ttft[p], ".0f") for p in ("p50", "p90", "p99")),
            "/".join(_fmt(tpot[p], ".1f") for p in ("p50", "p90", "p99")),
            "/".join(_fmt(itl[p], ".1f") for p in ("p50", "p99")),
        ])
    head = ["concurrency", "ok", "errors", "req/s", "out tok/s", "TTFT ms p50/p90/p99", "TPOT ms p50/p90/p99",
            "ITL ms p50/p99 (chunks)"]
    title = f"{record.candidate} ({record.load['served_by']})  run {record.run_id}  status {record.status}"
    reasons = [f"  {n} x {reason}" for level in record.load["levels"] for reason, n in level["error_reasons"].items()]
    buffered = [f"  concurrency {lv['concurrency']}: {lv['tpot_unavailable_reason']}" for lv in record.load["levels"]
                if lv.get("tpot_unavailable_reason")]
    return "\n".join([title, tabulate(rows, headers=head), *(["errors:", *reasons] if reasons else []),
                      *(["TPOT n/a (buffered stream):", *buffered] if buffered else [])])


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def candidates(fmt) -> None:
    """List registered candidates with their family, recipe, tasks and where they come from."""
    from harness.registry import RegistryError, all_specs, build, shadowed_plugins

    for line in shadowed_plugins():
        click.echo(f"warning: {line}", err=True)
    listing = []
    for _, spec in sorted(all_specs().items()):
        entry = {**spec.to_dict(), "available": True, "problem": None}
        try:
            entry["tasks"] = spec.tasks or sorted(build(spec).tasks)
        except (RegistryError, ImportError, ValueError) as err:
            entry.update(available=False, problem=str(err))
        listing.append(entry)
    if fmt == "json":
        click.echo(json.dumps(listing, indent=2))
        return
    width = max((len(e["name"]) for e in listing), default=10) + 2
    tasks = {e["name"]: ",".join(e["tasks"]) if e["available"] else f"unavailable: {e['problem']}" for e in listing}
    tasks_width = max((len(t) for t in tasks.values() if not t.startswith("unavailable")), default=10)
    for e in listing:
        click.echo(f"{e['name']:<{width}} {tasks[e['name']]:<{tasks_width}} {e['description']}  [{e['source']}]")


@cli.command()
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--results", type=click.Path(path_type=Path), help="Keep the null candidate's run here (default: a temp folder).")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Demo samples per suite for the null candidate's run.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(threads, results, limit, fmt) -> None:
    """This machine's measurement floors (null candidate memory and overhead, clock, bandwidth) and backends."""
    from harness.commands.doctor import diagnose, format_report

    report = diagnose(threads, results, limit)
    click.echo(json.dumps(report.to_dict(), indent=2) if fmt == "json" else format_report(report))


@cli.command()
def suites() -> None:
    """List the evaluation suites."""
    from harness.suites import SUITES

    for suite in SUITES.values():
        click.echo(f"{suite.name:<6} {suite.primary_metric:<7} {suite.description}")
        click.echo(f"       prompt: {suite.prompt!r}")
        click.echo(f"       long audio (default): {suite.long_audio}")


@cli.command()
@click.option("--candidate", "-c", required=True, help="Registered name or path to a candidate .toml file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless --allow-remote).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads of the model.")
@click.option("--allow-remote", is_flag=True, help="Allow binding an address other machines can reach.")
@click.option("--api-key-env", metavar="NAME", help="Require `Authorization: Bearer KEY`, KEY read from this variable.")
@click.option("--allow-local-audio", type=click.Path(path_type=Path), metavar="DIR",
              help="Accept file:// audio URLs, for files inside DIR only (symlinks resolved).")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=25.0, show_default=True,
              help="Largest request body (and file:// audio file).")
@click.option("--max-audio-s", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              help="Longest audio per request, in seconds.")
@click.option("--max-tokens-limit", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Largest max_tokens a request may ask for.")
def serve(candidate, host, port, device, threads, allow_remote, api_key_env, allow_local_audio, max_body_mb,
          max_audio_s, max_tokens_limit) -> None:
    """Serve a candidate as an OpenAI-compatible API (/v1/chat/completions with audio, streamed or
    not; /v1/models, /health, /metrics). One request at a time; stop it with SIGTERM or Ctrl-C."""
    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(f"`serve` needs {', '.join(missing)}: pip install 'lalm-bench[serve]'")
    from harness.registry import RegistryError
    from harness.serve.config import ServeConfig
    from harness.serve.server import ServeError
    from harness.serve.server import serve as run_server

    config = ServeConfig(candidate=candidate, host=host, port=port, device=device, threads=threads,
                         allow_remote=allow_remote, api_key_env=api_key_env, allow_local_audio=allow_local_audio,
                         max_body_mb=max_body_mb, max_audio_s=max_audio_s, max_tokens_limit=max_tokens_limit)
    try:
        run_server(config)
    except (ServeError, RegistryError, ValueError) as err:
        _fail(str(err))


def main() -> None:
    cli(prog_name="bench.py")


if __name__ == "__main__":
    main()
