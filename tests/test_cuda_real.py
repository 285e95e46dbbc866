"""The CUDA helpers on a real GPU, against allocations of known size (tests/test_gpu_paths.py fakes
torch.cuda for the machines without one). Skipped where torch sees no GPU, as in CI; run by
scripts/gpu_check.sh on a GPU machine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from harness.measure import gpu

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU: run scripts/gpu_check.sh on a GPU machine")

MB = 1024 * 1024


def test_peak_counters_see_a_known_allocation_and_reset():
    assert gpu.resolve_device("auto") == "cuda"
    gpu.reset_peak("cuda")
    block = torch.empty(256 * MB, dtype=torch.uint8, device="cuda")
    gpu.synchronizer("cuda")()
    peak = gpu.peak_report("cuda")
    assert 256 <= peak["max_allocated_mb"] < 256 + 16
    assert peak["max_reserved_mb"] >= peak["max_allocated_mb"]
    del block
    gpu.reset_peak("cuda")
    assert gpu.peak_report("cuda")["max_allocated_mb"] < 16


def test_identity_names_the_card_nvml_then_finds():
    ident = gpu.identity("cuda")
    assert ident["name"] == torch.cuda.get_device_name(0)
    assert ident["uuid"] or ident["pci_bus_id"], ident
    with gpu.NvmlPoller("cuda", interval_s=0.01) as poller:
        block = torch.empty(512 * MB, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        time.sleep(0.3)
    report = poller.report()
    del block
    assert report["nvml_matched_by"] in ("uuid", "pci_bus_id", "only_gpu"), report
    assert report["nvml_device_used_mb"] >= 512
    if report["nvml_used_mb"] is None:  # a container's pid namespace: null with the reason, never 0
        assert report["nvml_note"], report
    else:  # the CUDA context comes on top of the block
        assert report["nvml_used_mb"] >= 512


def test_a_served_trees_gpu_memory_is_read_by_pid():
    """What the `openai` family reads for `server_pid`: another process's GPU memory, by pid."""
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, torch; x = torch.empty(300 * 2**20, dtype=torch.uint8, device='cuda'); "
         "torch.cuda.synchronize(); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        memory = gpu.NvmlProcessMemory()
        assert memory.available
        used = memory.used_mb({child.pid})
        assert memory.device_used_peak_mb >= 300
        if memory.seen:
            assert used >= 300
        else:  # NVML lists host pids inside a container: 0 from used_mb, and `seen` says why
            assert used == 0
    finally:
        child.kill()
        child.wait(timeout=10)
