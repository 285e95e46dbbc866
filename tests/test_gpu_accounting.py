"""GPU accounting under schedulers and containers.

There is no GPU on the test machine, so torch.cuda's device properties and the `pynvml` module
are FAKED here (the one thing mocked): four physical GPUs, of which the scheduler handed this
process physical GPU 3 as torch's `cuda:0` (CUDA_VISIBLE_DEVICES=3), as Ray, Slurm and
Kubernetes do. The code under test is the real harness.measure.gpu.
"""

from __future__ import annotations

import os
import sys
import time
from types import ModuleType, SimpleNamespace

import pytest
import torch

from harness.measure import gpu
from harness.measure.quality_pass import merge_gpu_peaks

MB = 1024 * 1024


def _uuid(i: int) -> str:
    return f"{i:08x}-1111-2222-3333-444455556666"


def fake_nvml(processes: dict[int, list[tuple[int, int | None]]]) -> ModuleType:
    """pynvml over 4 GPUs; `processes[i]` = [(pid, used bytes)] NVML lists on physical GPU i."""
    nvml = ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    handles = [SimpleNamespace(index=i, uuid=f"GPU-{_uuid(i)}", bus=f"00000000:{0x18 + 0x11 * i:02X}:00.0")
               for i in range(4)]

    def find(key, value):
        for handle in handles:
            if getattr(handle, key) == value:
                return handle
        raise NVMLError(f"not found: {value}")

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(handles)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: handles[i]
    nvml.nvmlDeviceGetHandleByUUID = lambda u: find("uuid", u)
    nvml.nvmlDeviceGetHandleByPciBusId = lambda b: find("bus", b)
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda h: [
        SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in processes.get(h.index, [])]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(used=(h.index + 1) * 1000 * MB)
    return nvml


@pytest.fixture
def gpu3_as_cuda0(monkeypatch):
    """torch sees one GPU, cuda:0, which is physical GPU 3 (bus 0x4B)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    props = SimpleNamespace(name="Fake H100", uuid=_uuid(3), pci_domain_id=0, pci_bus_id=0x4B, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    return props


def _poll(monkeypatch, processes) -> dict:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(processes))
    with gpu.NvmlPoller("cuda:0", interval_s=0.01) as poller:
        deadline = time.monotonic() + 5
        while poller._thread is not None and not poller.device_peak and time.monotonic() < deadline:
            time.sleep(0.01)
    return poller.report()


def test_identity_names_the_physical_gpu(gpu3_as_cuda0):
    assert gpu.identity("cuda:0") == {
        "name": "Fake H100", "uuid": f"GPU-{_uuid(3)}", "pci_bus_id": "00000000:4B:00.0",
        "torch_index": 0, "cuda_visible_devices": "3",
    }
    assert gpu.identity("cpu") is None


def test_nvml_reads_the_scheduled_gpu_not_torchs_index(monkeypatch, gpu3_as_cuda0):
    me = os.getpid()
    # NVML index 0 is another card with someone else's job; ours runs on physical GPU 3.
    report = _poll(monkeypatch, {0: [(999, 9000 * MB)], 3: [(me, 2048 * MB)]})
    assert report["nvml_used_mb"] == 2048 and report["nvml_matched_by"] == "uuid"
    assert report["nvml_device_used_mb"] == 4000 and report["nvml_note"] is None


def test_pci_bus_id_when_torch_gives_no_uuid(monkeypatch, gpu3_as_cuda0):
    del gpu3_as_cuda0.uuid
    report = _poll(monkeypatch, {3: [(os.getpid(), 512 * MB)]})
    assert report["nvml_used_mb"] == 512 and report["nvml_matched_by"] == "pci_bus_id"


def test_container_pid_namespace_gives_null_with_reason_never_zero(monkeypatch, gpu3_as_cuda0):
    # Inside a container NVML lists the host's pid for this very process.
    report = _poll(monkeypatch, {3: [(4242, 2048 * MB)]})
    assert report["nvml_used_mb"] is None
    assert report["nvml_note"] == "no NVML process entry for this pid (container pid namespace?)"
    assert report["nvml_device_used_mb"] == 4000  # the whole card's use is still visible


def test_unmappable_gpu_is_reported_not_guessed(monkeypatch, gpu3_as_cuda0):
    for attr in ("uuid", "pci_bus_id"):
        delattr(gpu3_as_cuda0, attr)
    report = _poll(monkeypatch, {0: [(os.getpid(), 2048 * MB)]})  # index 0 would be the wrong card
    assert report["nvml_used_mb"] is None and report["nvml_device_used_mb"] is None
    assert report["nvml_note"].startswith("NVML unusable: LookupError")


def test_load_peak_is_folded_back_after_the_quality_pass():
    memory = {"max_allocated_mb": 100.0, "max_reserved_mb": 500.0}
    merge_gpu_peaks(memory, {"gpu_load_peak": {"max_allocated_mb": 300.0, "max_reserved_mb": 400.0}})
    assert memory == {"max_allocated_mb": 300.0, "max_reserved_mb": 500.0}
    merge_gpu_peaks(memory, {})  # batch 1: nothing to fold
    assert memory["max_allocated_mb"] == 300.0
