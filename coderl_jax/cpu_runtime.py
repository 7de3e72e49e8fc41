"""Process-level settings for running the jitted steps on the host CPU (laptop, CI, small runs).

Call `tune_cpu_runtime()` first thing in a process, before JAX starts its threads.

XLA:CPU allocates every execution's temporaries and outputs afresh; for a train step those are
many buffers above glibc's mmap threshold. glibc serves allocations that large with mmap, and
XLA's worker threads each get their own malloc arena, so every step maps, page-faults (the kernel
zeroes each 4 KiB page) and unmaps them again, and the faults take a sizeable share of the step's
CPU time (docs/benchmarks.md). With one arena, no mmap for large blocks and no trimming of the
heap top, freed buffers are reused by the next step and the faults disappear (the process keeps
its peak heap, which it needs again at the next step anyway).

Applied only on Linux/glibc and only when JAX will run on the CPU (`JAX_PLATFORMS=cpu`, or no
TPU or GPU attached to this machine); `CODERL_CPU_TUNING=0` turns it off. Nothing else changes:
same math, same XLA flags.

Platform. `select_platform()` (called by `coderl` before anything imports JAX) sets
`JAX_PLATFORMS=cpu` when no TPU and no GPU is attached and the user has not chosen a platform.
Without it, a CPU machine with libtpu installed (the `tpu` extra, which `coderl plan` needs) has
JAX try the TPU backend first: libtpu prints its initialisation errors (`unexpected worker
hostname ... TPU_WORKER_HOSTNAMES`) before JAX falls back to the CPU. Attached means: a TPU chip
on the PCI bus (Google's vendor id with a TPU device id, as JAX itself checks), a TPU device node
(`/dev/accel0`...), a VFIO group of a Google PCI device (`/dev/vfio/N`: v5e, v6e), or an NVIDIA /
AMD GPU device node. Where it cannot tell (a VFIO group whose sysfs entry is unreadable) it
assumes a TPU and leaves JAX to choose, as before. `JAX_PLATFORMS` (or `JAX_PLATFORM_NAME`, or
`JAX_FORCE_TPU_INIT`) set by the user is never overridden.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping, MutableMapping
from pathlib import Path

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_applied: dict | None = None

GOOGLE_PCI_VENDOR = "0x1ae0"  # also Google's virtual NIC (gVNIC) on every GCE VM: check the device id too
# PCI device ids of TPU chips (v3, plc, v4, v5p, v5e, v6e, TPU7x), as jax._src.hardware_utils lists them
TPU_PCI_DEVICES = frozenset({"0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"})
GPU_DEVICE_NODES = ("nvidia0", "nvidiactl", "dxg", "kfd")  # NVIDIA, WSL2, AMD (ROCm)
USER_PLATFORM_VARS = ("JAX_PLATFORMS", "JAX_PLATFORM_NAME", "JAX_FORCE_TPU_INIT")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def tpu_attached(root: str | os.PathLike = "/") -> bool:
    """Whether a TPU is attached to this machine (see the module docstring); `root` for tests."""
    root = Path(root)
    dev = root / "dev"
    if any(dev.glob("accel[0-9]*")):  # TPU v2-v5p driver nodes (not the DRM accel/ directory of NPUs)
        return True
    for vendor in (root / "sys/bus/pci/devices").glob("*/vendor"):
        if _read(vendor) == GOOGLE_PCI_VENDOR and _read(vendor.with_name("device")) in TPU_PCI_DEVICES:
            return True
    for group in (dev / "vfio").glob("[0-9]*"):  # v5e / v6e chips are driven through VFIO
        vendors = [_read(v) for v in (root / "sys/kernel/iommu_groups" / group.name / "devices").glob("*/vendor")]
        if not vendors or None in vendors or GOOGLE_PCI_VENDOR in vendors:
            return True  # a Google device, or cannot tell: let JAX decide
    return False


def gpu_attached(root: str | os.PathLike = "/") -> bool:
    dev = Path(root) / "dev"
    return any((dev / name).exists() for name in GPU_DEVICE_NODES) or any(dev.glob("nvidia[0-9]*"))


def choose_platforms(environ: Mapping[str, str], *, tpu: bool, gpu: bool) -> str | None:
    """The value `select_platform` gives JAX_PLATFORMS: "cpu" when the user chose no platform and no
    accelerator is attached, else None (leave JAX's own choice)."""
    if any(environ.get(name, "").strip() for name in USER_PLATFORM_VARS):
        return None
    if tpu or gpu:
        return None
    return "cpu"


def select_platform(environ: MutableMapping[str, str] | None = None, root: str | os.PathLike = "/") -> str | None:
    """Set JAX_PLATFORMS=cpu on a machine with no accelerator (see the module docstring); call it
    before JAX initialises its backends. Returns what it set (None: nothing)."""
    environ = os.environ if environ is None else environ
    if any(environ.get(name, "").strip() for name in USER_PLATFORM_VARS):
        return None  # the user's choice; skip looking at the devices
    chosen = choose_platforms(environ, tpu=tpu_attached(root), gpu=gpu_attached(root))
    if chosen is not None:
        environ["JAX_PLATFORMS"] = chosen
    return chosen


def _cpu_only() -> bool:
    platforms = os.environ.get("JAX_PLATFORMS", os.environ.get("JAX_PLATFORM_NAME", "")).strip().lower()
    if platforms:
        return platforms.split(",")[0] == "cpu"
    if os.environ.get("JAX_FORCE_TPU_INIT"):
        return False
    # nothing chosen: JAX takes an accelerator when one is attached, else the CPU (an installed
    # libtpu or CUDA plugin without its device falls back to the CPU)
    return not (tpu_attached() or gpu_attached())


def tune_cpu_runtime() -> dict:
    """Apply the malloc settings above when they apply; returns what was set (empty if nothing).
    Idempotent."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = {}
    if os.environ.get("CODERL_CPU_TUNING", "1") == "0" or platform.system() != "Linux":
        return _applied
    if platform.libc_ver()[0] != "glibc" or not _cpu_only():
        return _applied
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return _applied
    # order matters little; all before JAX creates its thread pools
    for name, option, value in (("malloc_arena_max", _M_ARENA_MAX, 1), ("malloc_mmap_max", _M_MMAP_MAX, 0),
                                ("malloc_trim_threshold", _M_TRIM_THRESHOLD, -1)):  # -1: never trim
        if libc.mallopt(option, value) == 1:
            _applied[name] = value
    return _applied
