"""Everything CUDA-specific the measurement needs, in one place.

The rest of the harness calls these helpers and never touches torch.cuda or NVML itself, so the
CPU path stays free of GPU assumptions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    return requested


def synchronizer(device: str) -> Callable[[], None] | None:
    """torch.cuda.synchronize on a GPU (so timestamps follow the device), nothing on a CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.synchronize


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_report(device: str) -> dict[str, float]:
    import torch

    mb = 1024 * 1024
    return {
        "max_allocated_mb": torch.cuda.max_memory_allocated(device) / mb,
        "max_reserved_mb": torch.cuda.max_memory_reserved(device) / mb,
    }


def _index(device: str) -> int:
    import torch

    return int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()


def identity(device: str) -> dict[str, str | int | None] | None:
    """Name, UUID and PCI bus id of torch's `device`, as nvidia-smi shows them; None on a CPU.

    Under a scheduler (Ray, Slurm, Kubernetes) `CUDA_VISIBLE_DEVICES` renumbers the GPUs, so
    torch's index says nothing about which card measured; the UUID and bus id do.
    """
    if not device.startswith("cuda"):
        return None
    import os

    import torch

    index = _index(device)
    props = torch.cuda.get_device_properties(index)
    raw = str(getattr(props, "uuid", "") or "").lower()
    bare = raw.removeprefix("gpu-").removeprefix("mig-")
    bus = None
    if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        # NVML's own format: 8-digit domain, upper-case hex, function 0.
        bus = f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
    return {
        "name": props.name,
        "uuid": f"GPU-{bare}" if bare else None,
        "pci_bus_id": bus,
        "torch_index": index,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def nvml_handle(pynvml, gpu: dict):
    """NVML's handle for the GPU `identity()` describes: by UUID, else by PCI bus id, else the only
    GPU there is. Never by torch's index: after renumbering that is another card."""
    if gpu["uuid"]:
        bare = gpu["uuid"].removeprefix("GPU-")
        for name in (f"GPU-{bare}", f"MIG-{bare}"):
            try:
                return pynvml.nvmlDeviceGetHandleByUUID(name), "uuid"
            except pynvml.NVMLError:
                pass
    if gpu["pci_bus_id"]:
        try:
            return pynvml.nvmlDeviceGetHandleByPciBusId(gpu["pci_bus_id"]), "pci_bus_id"
        except pynvml.NVMLError:
            pass
    if pynvml.nvmlDeviceGetCount() == 1:
        return pynvml.nvmlDeviceGetHandleByIndex(0), "only_gpu"
    raise LookupError(f"NVML knows no GPU with uuid {gpu['uuid']} or PCI bus id {gpu['pci_bus_id']}")


class NvmlPoller:
    """Polls the measured GPU's memory as NVML (and nvidia-smi) reports it: this process's entry,
    and the whole device's used memory beside it.

    Inside a container NVML lists host process ids, so this process may have no entry: its
    memory is then None with the reason in `nvml_note`, never 0.
    """

    def __init__(self, device: str, interval_s: float = 0.05):
        self.process_peak = 0
        self.device_peak = 0
        self.note: str | None = None
        self.matched_by: str | None = None
        self._seen_self = False
        self._memory_hidden = False
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._device = device
        self._enabled = device.startswith("cuda")

    def __enter__(self) -> NvmlPoller:
        if not self._enabled:
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle, self.matched_by = nvml_handle(pynvml, identity(self._device))
        except Exception as err:  # NVML missing or the GPU not found: the record says why
            self.note = f"NVML unusable: {type(err).__name__}: {err}"
            return self
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        import os

        import pynvml

        pid = os.getpid()
        while not self._stop.is_set():
            try:
                processes = pynvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
                used = pynvml.nvmlDeviceGetMemoryInfo(self._handle).used
            except pynvml.NVMLError as err:
                self.note = f"NVML polling stopped: {err}"
                return
            self.device_peak = max(self.device_peak, used)
            for proc in processes:
                if proc.pid == pid:
                    self._seen_self = True
                    if proc.usedGpuMemory is None:  # NVML_VALUE_NOT_AVAILABLE (MIG, some drivers)
                        self._memory_hidden = True
                    else:
                        self.process_peak = max(self.process_peak, proc.usedGpuMemory)
            self._stop.wait(self._interval)

    def restart_peak(self, process_floor: int = 0, device_floor: int = 0) -> None:
        """Starts a new peak window from the given floors (e.g. the peaks the model load left)."""
        self.process_peak, self.device_peak = process_floor, device_floor

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def report(self) -> dict[str, float | str | None]:
        if not self._enabled:
            return {"nvml_used_mb": None}
        mb = 1024 * 1024
        own = self.process_peak / mb if self.process_peak else None
        note = self.note
        if note is None and own is None:
            if not self._seen_self:
                note = "no NVML process entry for this pid (container pid namespace?)"
            elif self._memory_hidden:
                note = "NVML lists this process without its memory (per-process accounting unavailable, e.g. MIG)"
            else:
                note = "NVML listed this process with 0 bytes"
        return {
            "nvml_used_mb": own,
            "nvml_device_used_mb": self.device_peak / mb if self._thread is not None else None,
            "nvml_matched_by": self.matched_by,
            "nvml_note": note,
        }


class NvmlProcessMemory:
    """GPU memory NVML reports for a set of processes (a served model's server tree, sampled from
    the client), summed over every GPU, with the devices' used memory beside it. `available` is
    False without NVML or a GPU; `seen` says whether NVML ever listed one of the processes with
    its memory (inside a container NVML lists host pids, so it may never)."""

    def __init__(self) -> None:
        self._handles: list = []
        self.seen = False
        self.device_used_peak_mb: float | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no NVML library or no driver: not a GPU machine
            self._handles = []
        self.available = bool(self._handles)

    def used_mb(self, pids: set[int]) -> float | None:
        """MB the processes `pids` hold now (0 when NVML lists none of them); None without a GPU."""
        if not self.available:
            return None
        import pynvml

        mb = 1024 * 1024
        used = device = 0
        for handle in self._handles:
            device += pynvml.nvmlDeviceGetMemoryInfo(handle).used
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in pids and proc.usedGpuMemory is not None:
                    self.seen = True
                    used += proc.usedGpuMemory
        self.device_used_peak_mb = max(self.device_used_peak_mb or 0.0, device / mb)
        return used / mb
