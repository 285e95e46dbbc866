"""The CUDA-only helpers, with torch.cuda faked (no GPU exists on the CI machine: that is the one
thing mocked here), and their CPU behaviour for real."""

from __future__ import annotations

import pytest
import torch

from harness.measure import gpu


def test_cpu_has_no_sync_and_no_nvml():
    assert gpu.synchronizer("cpu") is None
    with gpu.NvmlPoller("cpu") as poller:
        pass
    assert poller.report() == {"nvml_used_mb": None}
    gpu.reset_peak("cpu")  # a no-op, must not touch CUDA


def test_auto_device_and_missing_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.resolve_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="no CUDA device"):
        gpu.resolve_device("cuda")


def test_cuda_paths_call_the_right_counters(monkeypatch):
    calls = []
    mb = 1024 * 1024
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 300 * mb)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 512 * mb)
    assert gpu.resolve_device("auto") == "cuda"
    gpu.synchronizer("cuda")()
    gpu.reset_peak("cuda:0")
    assert calls == ["sync", "empty", "reset"]
    assert gpu.peak_report("cuda") == {"max_allocated_mb": 300.0, "max_reserved_mb": 512.0}
