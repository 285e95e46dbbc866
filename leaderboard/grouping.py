"""Fair comparisons: which runs may be ranked together.

Two runs are comparable when they share the measurement protocol, the prompt mode (``run
--prompts``: the suites' prompts or each model's own), the device kind (device type and model; on
CPU also the thread count) and, for every suite both ran, the dataset (its
``dataset_hash`` -- a content hash of sample ids and references -- or, in older records, the
``dataset`` string). Runs that are not comparable go into separate groups, each ranked on its
own; ``mix=True`` puts everything into one group and the caller prints a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from records.fields import is_mapping
from records.run_record import RunRecord


@dataclass(frozen=True)
class DeviceKind:
    protocol: str
    device: str  # "cpu", "cuda", ...
    device_name: str | None
    threads: int | None  # CPU only: the pinned thread count
    prompts: str = "suite"  # run --prompts: suite (the competition's) | model (each model's own)

    def describe(self) -> str:
        name = f" ({self.device_name})" if self.device_name and self.device_name != "?" else ""
        threads = ""
        if self.threads is not None:
            threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}"
        prompts = f" · prompts: {self.prompts}" if self.prompts != "suite" else ""
        return f"protocol: {self.protocol}{prompts} · device: {self.device}{name}{threads}"


@dataclass
class Group:
    kind: DeviceKind
    datasets: dict[str, str | None] = field(default_factory=dict)  # suite -> hash or name
    runs: list[dict[str, Any]] = field(default_factory=list)
    mixed: list[str] = field(default_factory=list)  # with mix=True: what differs inside

    def describe(self) -> str:
        if self.mixed:
            return "MIXED (--mix): " + "; ".join(self.mixed)
        data = ", ".join(f"{s}={_short(h)}" for s, h in sorted(self.datasets.items())) or "none"
        return f"{self.kind.describe()} · datasets: {data}"

    def differences(self, other: Group) -> list[str]:
        """What sets this group apart from ``other``, e.g. ["threads 2 vs 1"]."""
        a, b = self.kind, other.kind
        out = []
        if a.protocol != b.protocol:
            out.append(f"measurement protocol {a.protocol} vs {b.protocol}")
        if a.prompts != b.prompts:
            out.append(f"prompts {a.prompts} vs {b.prompts}")
        if (a.device, a.device_name) != (b.device, b.device_name):
            out.append(f"device {a.device} ({a.device_name}) vs {b.device} ({b.device_name})")
        if a.threads != b.threads:
            out.append(f"threads {a.threads} vs {b.threads}")
        for suite in sorted(set(self.datasets) & set(other.datasets)):
            if self.datasets[suite] != other.datasets[suite]:
                out.append(
                    f"{suite} dataset {_short(self.datasets[suite])} vs {_short(other.datasets[suite])}"
                )
        return out or ["suites that do not overlap with a consistent dataset set"]


def _short(value: str | None) -> str:
    if value is None:
        return "unknown"
    text = str(value)
    return text[:12] if len(text) > 16 and all(c in "0123456789abcdef:" for c in text.lower()) else text


# These read a run by key (a RunRecord answers by key too), so that they also take the fragment of
# a record that a caller has: the environment, settings and suite blocks they look at.


def protocol_of(run: RunRecord | Mapping[str, Any]) -> str:
    """The measurement protocol a run used (records written before the rename call it `profile`)."""
    return str(run.get("protocol") or run.get("profile") or "default")


def device_kind(run: RunRecord | Mapping[str, Any]) -> DeviceKind:
    env = run.get("environment") or {}
    device = str(env.get("device") or "unknown").split(":")[0]
    name = env.get("device_name")
    threads = env.get("threads") if device == "cpu" else None
    return DeviceKind(
        protocol=protocol_of(run),
        device=device,
        device_name=str(name) if name is not None else None,
        threads=threads if isinstance(threads, int) else None,
        prompts=str((run.get("settings") or {}).get("prompts") or "suite"),  # older records: suite
    )


def datasets_of(run: RunRecord | Mapping[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for suite, block in (run.get("suites") or {}).items():
        if is_mapping(block):
            value = block.get("dataset_hash") or block.get("dataset")
            judge = block.get("judge")
            if isinstance(judge, Mapping):  # qa: runs judged by different judges or templates never rank together
                value = (f"{value} judged by {judge.get('model')} at {judge.get('base_url')}, "
                         f"template {str(judge.get('template_sha256'))[:8]}")
            out[suite] = str(value) if value is not None else None
    return out


def _consistent(a: Mapping[str, str | None], b: Mapping[str, str | None]) -> bool:
    return all(a[s] == b[s] for s in set(a) & set(b))


def group_runs(runs: list[RunRecord] | list[dict[str, Any]], mix: bool = False) -> list[Group]:
    """Split runs into comparable groups; default protocol first, then larger groups first.

    Within one device kind a run joins the first group whose datasets agree with its own on
    every suite both have (a run with ASR only joins a group with ASR + captioning when the
    ASR data is the same), so the grouping does not depend on which suites a candidate does.
    """
    if mix:
        return [_mixed_group(runs)] if runs else []
    by_kind: dict[DeviceKind, list[Group]] = {}
    # Runs with more suites first, so that partial runs join the fuller groups. Each run's
    # datasets are read once (the index keeps equal keys in their given order, as a stable sort).
    keyed = [(datasets_of(r), r) for r in runs]
    order = sorted(range(len(keyed)), key=lambda i: (-len(keyed[i][0]), str(keyed[i][1].get("run_id")), i))
    for data, run in (keyed[i] for i in order):
        kind = device_kind(run)
        groups = by_kind.setdefault(kind, [])
        for group in groups:
            if _consistent(group.datasets, data):
                group.runs.append(run)
                for suite, value in data.items():
                    group.datasets.setdefault(suite, value)
                break
        else:
            groups.append(Group(kind, dict(data), [run]))
    groups = [g for gs in by_kind.values() for g in gs]
    for group in groups:
        group.runs.sort(key=lambda r: (str(r.get("candidate")), str(r.get("run_id"))))
    groups.sort(key=lambda g: (g.kind.protocol != "default", g.kind.protocol, g.kind.prompts != "suite",
                               -len(g.runs), g.describe()))
    return groups


def _mixed_group(runs: list[dict[str, Any]]) -> Group:
    groups = group_runs(runs)
    group = Group(groups[0].kind, dict(groups[0].datasets), list(runs))
    if len(groups) > 1:
        diffs: list[str] = []
        for other in groups[1:]:
            for d in other.differences(groups[0]):
                if d not in diffs:
                    diffs.append(d)
        group.mixed = [f"{len(groups)} groups of runs that are not comparable ranked together, differing in " + ", ".join(diffs)]
    return group
