"""lalm-bench command line: run candidates, rank them.

Thin on purpose: options are parsed here and the work is done by `harness` and `leaderboard`.
Heavy libraries (torch, transformers) are imported only inside the commands that need them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

DEFAULT_RESULTS = Path("results")


def _fail(message: str) -> None:
    """A user error: one clear line on stderr, non-zero exit, no traceback."""
    raise click.ClickException(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Benchmark lightweight audio-language models: quality (WER, SPIDEr), latency, memory."""


@cli.command()
@click.option("--candidate", "-c", required=True, help="Registered name or path to a candidate .toml file.")
@click.option("--data", type=click.Path(path_type=Path), help="SALMONN-style annotation JSON (default: embedded demo).")
@click.option("--suite", "suites", help="Comma-separated suites to run, e.g. asr,aac (default: all the data has).")
@click.option("--limit", type=click.IntRange(min=1), help="Run at most N samples per suite.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads for the measured process.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True, help="Untimed warm-up requests.")
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--audio-root", type=click.Path(path_type=Path), help="Folder relative audio paths resolve against.")
@click.option("--skip-invalid", is_flag=True, help="Run valid samples; record invalid ones as failed.")
@click.option("--timeout-s", type=float, help="Kill the measured process after this many seconds.")
@click.option("--profile", type=click.Choice(["default", "nota2025"]), default="default", show_default=True,
              help="Measurement method: ours (default) or the competition organiser's (nota2025).")
def run(candidate, data, suites, limit, device, threads, warmup, results, audio_root, skip_invalid, timeout_s,
        profile) -> None:
    """Run one candidate on the suites and write results/<run_id>/run.json."""
    from harness.data import DataError
    from harness.registry import RegistryError
    from harness.runner import RunError, RunOptions, execute
    from harness.suites import parse_suite_list

    try:
        options = RunOptions(
            candidate=candidate, data=data, suites=parse_suite_list(suites), limit=limit, device=device,
            threads=threads, warmup=warmup, results=results, audio_root=audio_root,
            skip_invalid=skip_invalid, timeout_s=timeout_s, profile=profile,
        )
        run_dir, record = execute(options)
    except (RegistryError, RunError, ValueError) as err:
        _fail(str(err))
    except DataError as err:
        _fail(f"{err}\nFix the file, or pass --skip-invalid to run the valid samples and record the rest as failed.")
    click.echo(_summary(record))
    click.echo(f"run record: {run_dir / 'run.json'}")
    if record["status"] != "ok":
        log = run_dir / "worker.log"
        if record.get("error") and log.is_file():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            click.echo(f"last lines of {log}:\n" + "\n".join(tail), err=True)
        sys.exit(1)


def _fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _summary(record: dict) -> str:
    lines = [f"{record['candidate']}  run {record['run_id']}  status {record['status']}"]
    if record.get("error"):
        lines.append(f"  error: {record['error']}")
    for name, suite in record["suites"].items():
        m = suite["metrics"]
        if name == "asr":
            quality = f"WER {_fmt(m.get('wer'))}  CER {_fmt(m.get('cer'))}"
        elif name == "aac":
            quality = f"CIDEr-D {_fmt(m.get('cider_d'), '.4f')}  SPIDEr {_fmt(m.get('spider'), '.4f')}"
        else:
            quality = ", ".join(f"{k} {_fmt(v)}" for k, v in m.items() if isinstance(v, float))
        lines.append(f"  {name}: {suite['n_samples']} samples, {suite['n_failed']} failed; {quality}")
        lines += [f"    note: {n}" for n in suite.get("notices", [])]
    eff = record["efficiency"]
    lines.append(
        f"  latency {_fmt(eff.get('latency_ms'), '.1f')} ms (TTFT p50 {_fmt(eff['ttft_ms']['p50'], '.1f')} ms, "
        f"TPOT p50 {_fmt(eff['tpot_ms']['p50'], '.2f')} ms)  peak memory {_fmt(eff.get('peak_memory_mb'), '.1f')} MB"
        f"  weights {_fmt(eff.get('weights_mb'), '.1f')} MB"
    )
    return "\n".join(lines)


DEMO_CANDIDATES = ("baseline", "qlora4bit", "whisper-tiny")


@cli.command()
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.pass_context
def demo(ctx, results, threads) -> None:
    """Run the built-in candidates on the embedded demo data, then print the leaderboard."""
    failed = []
    for name in DEMO_CANDIDATES:
        click.echo(f"== {name}")
        try:
            ctx.invoke(run, candidate=name, results=results, threads=threads)
        except SystemExit as exit_:
            if exit_.code:
                failed.append(name)
    click.echo("")
    ctx.invoke(leaderboard, results=results)
    if failed:
        _fail(f"runs that did not finish cleanly: {', '.join(failed)} (see their worker.log)")


@cli.command()
@click.option("--results", type=click.Path(path_type=Path), default=DEFAULT_RESULTS, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table", show_default=True)
@click.option("--weights", default="nota2025", show_default=True, help='Profile name or "wer=1,spider=1,memory=2,latency=2".')
def leaderboard(results, fmt, weights) -> None:
    """Rank the newest run of each candidate by weighted per-criterion ranks."""
    import leaderboard as lb

    if not Path(results).is_dir():
        _fail(f"results folder not found: {results} (run `bench.py run --candidate NAME` first)")
    runs, warnings = lb.load_runs(results)
    try:
        groups = {profile: lb.rank(group, weights) for profile, group in lb.group_by_profile(runs).items()}
    except ValueError as err:
        _fail(str(err))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        rows = [{**row, "profile": profile} for profile, ranked in groups.items() for row in lb.to_json(ranked)]
        click.echo(json.dumps(rows, indent=2))
        return
    if not groups:
        click.echo(lb.to_table([], fmt))
    for i, (profile, ranked) in enumerate(groups.items()):
        if len(groups) > 1 or profile != "default":
            heading = f"Measurement profile: {profile} (ranked only against runs of the same profile)"
            click.echo(("\n" if i else "") + (f"# {heading}" if fmt == "csv" else heading))
        click.echo(lb.to_table(ranked, fmt))


@cli.command()
def candidates() -> None:
    """List registered candidates with their tasks."""
    from harness.registry import RegistryError, all_specs, build

    for name, spec in sorted(all_specs().items()):
        try:
            tasks = spec.tasks or sorted(build(spec).tasks)
        except (RegistryError, ImportError, ValueError) as err:
            tasks = [f"unavailable: {err}"]
        click.echo(f"{name:<16} {','.join(tasks):<10} {spec.description}  [{spec.source}]")


@cli.command()
def suites() -> None:
    """List the evaluation suites."""
    from harness.suites import SUITES

    for suite in SUITES.values():
        click.echo(f"{suite.name:<6} {suite.primary_metric:<7} {suite.description}")
        click.echo(f"       prompt: {suite.prompt!r}")


def main() -> None:
    cli(prog_name="bench.py")


if __name__ == "__main__":
    main()
