"""A real two-node Ray cluster on loopback for tests, stopped by process id.

Ray's settings that work offline on this machine: RAY_AUTH_MODE=disabled, a short --temp-dir
(Ray's unix socket paths must stay under ~107 characters), no dashboard, a capped object store,
no usage stats. Both nodes use the loopback address 127.0.0.2: Ray rewrites "127.0.0.1" to the
machine's outward address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and that setting makes
`ray start --address` refuse to add a second node.

Ray's multi-node servers (GCS, raylet, object manager) listen on all interfaces whatever
address they are given. So the cluster, and every driver that talks to it, runs inside a
network namespace of its own whose only interface is loopback (`LoopbackNamespace`): nothing
of the test's cluster can be reached from, or reach, any other address.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil

NODE_IP = "127.0.0.2"


class LoopbackNamespace:
    """`ip netns add` a namespace holding only `lo` (up); `prefix` runs a command inside it."""

    def __init__(self) -> None:
        self.name = f"lalm-ray-{os.getpid()}-{secrets.token_hex(3)}"

    def create(self) -> str | None:
        """None when made, else why not (no root, no `ip`, no namespace support)."""
        for command in (["ip", "netns", "add", self.name], [*self.prefix, "ip", "link", "set", "lo", "up"]):
            try:
                out = subprocess.run(command, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired) as err:
                return f"{' '.join(command)}: {err}"
            if out.returncode != 0:
                self.delete()
                return f"{' '.join(command)}: {out.stderr.strip() or out.returncode}"
        return None

    @property
    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, timeout=30)


class RayCluster:
    def __init__(self, temp_dir: Path, env: dict[str, str], prefix: list[str]):
        self.temp_dir = temp_dir
        self.prefix = prefix  # runs a command inside the cluster's loopback-only namespace
        self.env = {**env, "RAY_AUTH_MODE": "disabled"}
        self.env.pop("RAY_ADDRESS", None)
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        self.address: str | None = None

    def _ray_start(self, *args: str) -> None:
        ray_cli = Path(sys.executable).with_name("ray")
        command = [*self.prefix, str(ray_cli), "start", f"--node-ip-address={NODE_IP}", f"--temp-dir={self.temp_dir}",
                   "--object-store-memory=100000000", "--disable-usage-stats", *args]
        out = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")

    def start(self, worker_resources: str) -> RayCluster:
        self._ray_start("--head", "--port=0", "--num-cpus=2", "--include-dashboard=false")
        self.address = (self.temp_dir / "ray_current_cluster").read_text().strip()
        self._ray_start(f"--address={self.address}", "--num-cpus=2", f"--resources={worker_resources}")
        return self

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its temp dir, and their descendants (workers)."""
        marker = str(self.temp_dir)
        roots = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in arg for arg in proc.info["cmdline"] or []):
                    roots.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        found = {p.pid: p for p in roots}
        for proc in roots:
            try:
                found.update({c.pid: c for c in proc.children(recursive=True)})
            except psutil.NoSuchProcess:
                continue
        return [p for p in found.values() if p.pid != os.getpid()]

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
