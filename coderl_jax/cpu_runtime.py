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
TPU/GPU plugin installed); `CODERL_CPU_TUNING=0` turns it off. Nothing else changes: same math,
same XLA flags.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_ACCELERATOR_PACKAGES = ("libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin")
_applied: dict | None = None


def _cpu_only() -> bool:
    platforms = os.environ.get("JAX_PLATFORMS", os.environ.get("JAX_PLATFORM_NAME", "")).strip().lower()
    if platforms:
        return platforms.split(",")[0] == "cpu"
    return not any(importlib.util.find_spec(p) is not None for p in _ACCELERATOR_PACKAGES)


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
