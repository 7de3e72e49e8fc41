"""Helpers shared by the sandbox / service tests."""

from __future__ import annotations

import os
import time


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (from /proc, so it sees through pid namespaces)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, stack = [], [root]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def leftovers(pool, wait_s: float = 2.0) -> int:
    """Processes below the pool's zygotes other than the zygotes themselves (and bwrap's init).

    A result can come back while its zygote is still sweeping (the next job waits for the sweep,
    the caller does not), so this polls for up to ``wait_s`` before reporting what is left."""
    base = 2 if pool.layers.bwrap else 0  # bwrap -> its pid-1 init -> zygote
    deadline = time.monotonic() + wait_s
    while True:
        n = sum(max(0, len(descendants(z.proc.pid)) - base)
                for w in pool._workers for z in list(w.zygotes.values()) if z.alive)
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.02)


def stdio(program: str, inputs: list[str], outputs: list[str], timeout_s: float = 3.0, **kw) -> dict:
    return {"program": program, "tests": {"style": "stdio", "inputs": inputs, "outputs": outputs},
            "timeout_s": timeout_s, **kw}


def call(program: str, fn_name: str, inputs: list, outputs: list, timeout_s: float = 3.0, **kw) -> dict:
    return {"program": program, "tests": {"style": "call", "fn_name": fn_name, "inputs": inputs, "outputs": outputs},
            "timeout_s": timeout_s, **kw}


def asserts(program: str, test: str, entry_point: str = "", timeout_s: float = 3.0, **kw) -> dict:
    return {"program": program, "tests": {"style": "assert", "test": test, "entry_point": entry_point},
            "timeout_s": timeout_s, **kw}
