"""Each side of a benchmark in a long-lived process of its own, timed repeats alternated.

A side is a factory `module:function` (a module of the project or of benchmarks/, called with keyword arguments in a fresh
interpreter started for that side alone) that returns `(run, info)`: `run(**kwargs)` performs one
timed repeat and returns its figure (a number or a JSON-able dict), `info` is a dict reported
once (compile or warm-up time, versions). So a peer never runs inside a process that has imported
JAX, started thread pools or grown its heap for the other side, and both sides get the same
environment and the same CPU allocator settings (`coderl_jax.cpu_runtime.tune_cpu_runtime`, on
both or on neither).

    with Sides({"ours": ("update:ours_side", {...}), "pytorch": ("update:torch_side_proc", {...})},
               cpu_tuning=True) as sides:
        for r in range(repeats):
            for name in sides.order(r):       # ABBA: which side goes first alternates
                figures[name].append(sides.run(name))

The parent only sends commands and reads one JSON line per command; the side that is not running
waits blocked on its pipe. Between repeats the parent pauses `settle_s`, so thread pools that
spin-wait after their work (OpenMP's) have gone to sleep before the other side starts.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class SideError(RuntimeError):
    """A side's process failed; the message names the side and carries its traceback."""


class Sides:
    def __init__(self, sides: dict[str, tuple[str, dict]], *, cpu_tuning: bool = True, settle_s: float = 0.25,
                 env: dict[str, str] | None = None):
        self.settle_s = settle_s
        self.info: dict[str, dict] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        base_env = dict(os.environ if env is None else env)
        base_env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, *filter(None, [base_env.get("PYTHONPATH")])])
        try:
            for name, (target, kwargs) in sides.items():  # started one after the other: set-up is not timed
                proc = subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), target, json.dumps(kwargs),
                     "1" if cpu_tuning else "0"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=base_env, text=True, bufsize=1)
                self._procs[name] = proc
                self.info[name] = {k: v for k, v in self._reply(name).items() if k != "ready"}
        except BaseException:
            self.close()
            raise

    def __iter__(self):
        return iter(self._procs)

    def order(self, repeat: int) -> list[str]:
        """The sides in the order of this repeat: reversed every other repeat."""
        names = list(self._procs)
        return names if repeat % 2 == 0 else names[::-1]

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def run(self, name: str, **kwargs: Any) -> Any:
        """One timed repeat of side `name` (after the settle pause); returns its figure."""
        time.sleep(self.settle_s)
        proc = self._procs[name]
        proc.stdin.write(json.dumps({"run": kwargs}) + "\n")
        proc.stdin.flush()
        return self._reply(name)["result"]

    def _reply(self, name: str) -> dict:
        line = self._procs[name].stdout.readline()
        if not line:
            code = self._procs[name].wait()
            raise SideError(f"benchmark side {name!r} exited (code {code}) without answering")
        msg = json.loads(line)
        if "error" in msg:
            raise SideError(f"benchmark side {name!r} failed:\n{msg['error']}")
        return msg

    def close(self) -> None:
        for proc in self._procs.values():
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in self._procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def __enter__(self) -> "Sides":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def cpu_model() -> str:
    """The CPU's model name, printed beside every figure (ratios hold only for the CPU they name)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_env(isa: str) -> dict[str, str]:
    """The environment for both sides; `isa="avx2"` caps both to AVX2 where a switch exists (on an
    AVX-512 machine, a proxy for an AVX2 one: report it as such). PyTorch's kernels (ATen), oneDNN
    and MKL are all capped; XLA's flag is documented for the code LLVM generates, while the XNNPACK
    kernels XLA:CPU calls for its matmuls choose their instructions at run time, so the proxy may
    flatter our side."""
    env = dict(os.environ)
    if isa == "avx2":
        env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_cpu_max_isa=AVX2"]))
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    elif isa != "native":
        raise ValueError(f"--isa must be native or avx2, not {isa!r}")
    return env


def _serve(target: str, kwargs: dict, cpu_tuning: bool) -> None:
    """In the side's own process: build the side, then answer one JSON line per command."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the side prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        channel.write(json.dumps(msg) + "\n")

    try:
        if cpu_tuning:
            from coderl_jax.cpu_runtime import tune_cpu_runtime

            tune_cpu_runtime()  # before the side imports JAX or torch and starts threads
        module, function = target.split(":")
        run, info = getattr(importlib.import_module(module), function)(**kwargs)
        send({"ready": True, **(info or {})})
        for line in sys.stdin:
            send({"result": run(**json.loads(line)["run"])})
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises SideError
        send({"error": traceback.format_exc()})
        sys.exit(1)


if __name__ == "__main__":
    if sys.path and os.path.abspath(sys.path[0]) == HERE:
        sys.path.pop(0)  # benchmarks/ comes after the project root (PYTHONPATH): benchmarks/tracer.py
        # must not shadow the tracer package
    _serve(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1")
