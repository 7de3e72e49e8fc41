"""Supervisor side of the sandbox: limits, layer detection, zygotes, one job at a time.

Everything here runs in the trusted process (the trainer or the HTTP service).
A :class:`Zygote` owns one warm zygote process (``tracer.zygote``), started with
subprocess -- inside bubblewrap when it works -- and runs one job at a time in a
child forked from it. The supervisor, not the child, enforces the wall-clock
deadline (SIGKILL through a pidfd, then the zygote kills and reaps everything
the job left), reads stdout/stderr continuously with a cap, and parses the
nonce-tagged records of the private verdict channel (see ``tracer.harness``).
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import os
import marshal
import random
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

BWRAP = os.environ.get("TRACER_BWRAP") or "/usr/bin/bwrap"  # the bubblewrap binary (TRACER_BWRAP: another path)
INSTALL_BWRAP = "sudo apt-get install -y bubblewrap"  # Debian / Ubuntu; the package is `bubblewrap` elsewhere too
# the layers without which model-written code can reach the network: what `require_isolation` checks
ISOLATION_LAYERS = ("network_isolated",)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds the tracer package
_READ = 1 << 16
_STDERR_KEEP = 64 << 10
_VERDICT_CAP = 64 << 20
_EXIT_GRACE_S = 5.0  # after our SIGKILL, how long the zygote may take to report the exit
_DRAIN_GRACE_S = 2.0  # after the exit report, how long the pipes may take to reach EOF
_BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Limits:
    """Per-job limits. ``timeout_s`` is the wall-clock limit *per test case* (a request's own
    ``timeout_s`` overrides it); CPU time is limited to the same budget (RLIMIT_CPU, rounded up)."""

    timeout_s: float = 6.0
    memory_mb: int = 1024  # RLIMIT_AS
    output_bytes: int = 8 << 20  # stdout + stderr of one process
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE (largest file the program may write)
    tmp_bytes: int = 64 << 20  # size of the private /tmp (bubblewrap tmpfs)
    nofile: int = 64  # RLIMIT_NOFILE
    nproc: int = 32  # RLIMIT_NPROC (binds only for an unprivileged uid)
    max_program_bytes: int = 32 << 20
    max_timeout_s: float = 60.0  # requests may not ask for more than this per case


@dataclass(frozen=True)
class Layers:
    """Which isolation layers are active (reported in every result's "sandbox")."""

    bwrap: bool
    tmp_size_cap: bool
    uid_drop: bool
    bwrap_args: tuple[str, ...] = ()
    problem: str = ""  # why bubblewrap is not active ("" when it is)

    @property
    def sweep(self) -> str:
        return "pidns" if self.bwrap else "uid" if self.uid_drop else "children"

    def as_dict(self) -> dict[str, Any]:
        d = {
            "bwrap": self.bwrap,
            "network_isolated": self.bwrap,
            "read_only_root": self.bwrap,
            "private_tmp": self.bwrap,
            "tmp_size_cap": self.tmp_size_cap,
            "pid_namespace": self.bwrap,
            "hidden_home": self.bwrap,
            "uid_drop": self.uid_drop,
            "nproc_limit": self.uid_drop or os.geteuid() != 0,
            "rlimits": True,
            "own_process_group": True,
            "scrubbed_env": True,
            "wall_clock_kill": True,
            "private_verdict_channel": True,
            "sweep": self.sweep,
        }
        if not self.bwrap and self.problem:
            d["bwrap_problem"] = self.problem
        return d


def missing_isolation(sandbox: dict) -> list[str]:
    """The isolation layers (ISOLATION_LAYERS) a sandbox report (`Layers.as_dict()`, a result's or
    the service's "sandbox") does not have."""
    return [k for k in ISOLATION_LAYERS if not sandbox.get(k)]


def describe_layers(sandbox: dict) -> str:
    """One line for a log: the active layers, and what is missing and why."""
    on = [k for k, v in sandbox.items() if v is True]
    off = [k for k, v in sandbox.items() if v is False]
    line = f"sandbox layers: {', '.join(on) or 'none'}"
    if off:
        line += f"; off: {', '.join(off)}"
    if sandbox.get("bwrap_problem"):
        line += f" ({sandbox['bwrap_problem']})"
    return line


def _hidden_dirs() -> list[str]:
    out = []
    for d in (os.path.expanduser("~"), "/root", "/home"):
        d = os.path.realpath(d)
        if d != "/" and os.path.isdir(d) and d not in out:
            out.append(d)
    return out


def _needed_paths() -> list[str]:
    """Paths the zygote must still see when home directories are hidden."""
    import site

    cands = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, _ROOT,
             os.path.dirname(os.path.realpath(sys.executable)), *site.getsitepackages(), *sys.path]
    out: list[str] = []
    for p in cands:
        if p and os.path.isabs(p) and os.path.exists(p):
            p = os.path.realpath(p)
            if p not in out:
                out.append(p)
    return out


def _site_dirs() -> list[str]:
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def _bwrap_args(tmp_bytes: int | None) -> list[str]:
    args = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if tmp_bytes:
        args += ["--perms", "1777", "--size", str(tmp_bytes)]
    args += ["--tmpfs", "/tmp"]
    hidden = _hidden_dirs()
    for d in hidden:
        args += ["--tmpfs", d]
    # the code and packages the zygote imports may live under a hidden directory or under /tmp
    # (a checkout or a virtual environment there): bind them back, read-only, at the same path
    covered = [*hidden, "/tmp"]
    bound: list[str] = []
    made: set[str] = set()
    for p in sorted(_needed_paths()):
        if any(p == b or p.startswith(b + "/") for b in bound):
            continue
        for d in covered:
            if p.startswith(d + "/"):
                parts = p[len(d) + 1:].split("/")[:-1]
                for i in range(len(parts)):  # parents that bwrap would otherwise create with mode 0700
                    sub = d + "/" + "/".join(parts[:i + 1])
                    if sub not in made:
                        made.add(sub)
                        args += ["--perms", "0755", "--dir", sub]
                args += ["--ro-bind", p, p]
                bound.append(p)
                break
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
             "--chdir", "/tmp"]
    return args


def _traversable_by_others(path: str) -> bool:
    p = os.path.realpath(path)
    while True:
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


@functools.lru_cache(maxsize=None)
def detect_layers(use_bwrap: bool | None = None, tmp_bytes: int = Limits.tmp_bytes) -> Layers:
    """Probe once which layers work here. ``use_bwrap``: None = auto, False = never, True = required.
    Without bubblewrap, ``Layers.problem`` says why (not installed, disabled, or failing to start)."""
    bwrap_ok, size_ok, args, problem = False, False, (), ""
    if use_bwrap is False:
        problem = "bubblewrap disabled (use_bwrap=False)"
    elif not os.access(BWRAP, os.X_OK):
        problem = f"{BWRAP} not found; install it: {INSTALL_BWRAP}"
    else:
        for size in (tmp_bytes, None):
            cand = _bwrap_args(size)
            probe = [*cand, os.path.realpath(sys.executable), "-s", "-c",
                     f"import sys; sys.path.insert(0, {_ROOT!r}); import tracer.zygote"]
            try:
                run = subprocess.run(probe, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, timeout=30, env=_BASE_ENV)
                ok, err = run.returncode == 0, run.stderr.decode("utf-8", "replace").strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                ok, err = False, f"{type(e).__name__}: {e}"
            if ok:
                bwrap_ok, size_ok, args = True, size is not None, tuple(cand)
                break
            last = err.splitlines()[-1][:300] if err else "no message"
            problem = (f"{BWRAP} is installed but cannot start a sandbox here ({last}); unprivileged user "
                       "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, "
                       "kernel.apparmor_restrict_unprivileged_userns)")
    if use_bwrap and not bwrap_ok:
        raise RuntimeError(f"bubblewrap requested but it does not work here: {problem}")
    root = os.geteuid() == 0
    uid_drop = root and (bwrap_ok or all(_traversable_by_others(p) for p in _needed_paths()))
    return Layers(bwrap=bwrap_ok, tmp_size_cap=size_ok, uid_drop=uid_drop, bwrap_args=args,
                  problem="" if bwrap_ok else problem)


def _parse_int(text: str) -> int:
    return int(text) if len(text) < 4000 else int(decimal.Decimal(text))


def parse_record(line: bytes) -> Any:
    return json.loads(line, parse_int=_parse_int)


@dataclass
class Outcome:
    """What happened to one child process."""

    records: list[dict] = field(default_factory=list)
    stdout: bytes = b""
    stderr: bytes = b""
    wait_status: int | None = None  # raw waitpid status, None if unknown
    killed: str | None = None  # "timeout" | "output_limit" | "stopped" when we killed it
    tampered: bool = False  # a malformed or foreign line on the verdict channel
    anomaly: str | None = None  # the zygote misbehaved; it has been discarded
    wall_s: float = 0.0

    @property
    def complete(self) -> bool:
        return any(r.get("k") == "end" for r in self.records)

    @property
    def signal(self) -> int | None:
        s = self.wait_status
        return os.WTERMSIG(s) if s is not None and os.WIFSIGNALED(s) else None

    @property
    def exit_code(self) -> int | None:
        s = self.wait_status
        return os.WEXITSTATUS(s) if s is not None and os.WIFEXITED(s) else None


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("tracer-job")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (used only if a zygote without a pid namespace is lost)."""
    code = f"import os; os.setresgid({uid},{uid},{uid}); os.setresuid({uid},{uid},{uid}); os.kill(-1, 9)"
    subprocess.run([sys.executable, "-S", "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=10, check=False)


class Zygote:
    """One warm zygote process (one PYTHONHASHSEED) and the jobs run through it, one at a time."""

    def __init__(self, layers: Layers, limits: Limits, seed: int = 0, max_jobs: int = 1000):
        self.layers, self.limits, self.seed, self.max_jobs = layers, limits, seed, max_jobs
        self.jobs = 0
        self._owed_exit = 0  # exit reports of completed jobs not read yet
        self.uid = random.randrange(1_000_000, 2_000_000) if layers.uid_drop else None
        self.tmp = "/tmp" if layers.bwrap else tempfile.mkdtemp(prefix="tracer-")
        if not layers.bwrap:
            os.chmod(self.tmp, 0o711)
        self.nproc = self._nproc()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg = {"fd": child.fileno(), "uid": self.uid, "sweep": layers.sweep, "tmp": self.tmp, "env": _BASE_ENV}
        # -S: no site module, so no .pth file runs; the site-packages directories are added by hand.
        path = [_ROOT, *_site_dirs()]
        boot = f"import sys; sys.path[1:1] = {path!r}; from tracer.zygote import main; main(sys.argv[1:])"
        argv = [*layers.bwrap_args, os.path.realpath(sys.executable), "-S", "-B", "-c", boot, json.dumps(cfg)]
        debug = os.environ.get("TRACER_DEBUG")
        self.proc = subprocess.Popen(argv, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=None if debug else subprocess.DEVNULL,
                                     env={**_BASE_ENV, "PYTHONHASHSEED": str(seed)}, start_new_session=True)
        child.close()
        self.sock = parent
        try:
            msg, _ = self._recv(30.0)
        except Exception:
            self.close(hard=True)
            raise
        if msg.get("t") != "ready":
            self.close(hard=True)
            raise RuntimeError(f"zygote failed to start: {msg}")

    def _nproc(self) -> int | None:
        if self.layers.uid_drop:
            return self.limits.nproc
        if os.geteuid() == 0:
            return None  # RLIMIT_NPROC does not bind root
        me = os.getuid()
        mine = sum(1 for p in os.listdir("/proc") if p.isdigit() and _owner(p) == me)
        return mine + self.limits.nproc

    def _recv(self, timeout: float) -> tuple[dict, list[int]]:
        if not select.select([self.sock], [], [], timeout)[0]:
            raise TimeoutError("zygote did not answer")
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 4)
        if not data:
            raise ConnectionError("zygote exited")
        return json.loads(data), fds

    @property
    def alive(self) -> bool:
        return self.sock is not None and self.proc.poll() is None

    def close(self, hard: bool = False) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if not hard:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                hard = True
        if hard:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.uid is not None and not self.layers.bwrap:
                _kill_uid(self.uid)
        self.proc.wait()
        if not self.layers.bwrap:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, job: dict, stdin: bytes, timeout_s: float, cpu_s: float,
            on_record: Callable[[dict], bool] | None = None) -> Outcome:
        """Run one job in a fresh child. ``on_record`` sees each verdict record and returns True to
        stop the job early. The deadline is re-armed after every "case" record."""
        self.jobs += 1
        nonce = secrets.token_hex(16)
        lim = self.limits
        hdr = {"t": "run", "limits": {
            "cpu_s": max(1, math.ceil(cpu_s)), "as_bytes": lim.memory_mb << 20, "file_bytes": lim.file_bytes,
            "nofile": lim.nofile, "nproc": self.nproc}}
        out = Outcome()
        t0 = time.monotonic()
        fds = [_memfd(marshal.dumps({**job, "nonce": nonce})), _memfd(stdin)]
        pipes = [os.pipe() for _ in range(3)]
        fds += [w for _, w in pipes]
        try:
            socket.send_fds(self.sock, [json.dumps(hdr).encode()], fds)
        except OSError as e:
            out.anomaly = f"zygote unreachable: {e}"
        finally:
            for fd in fds:
                os.close(fd)
        reads = {r: name for (r, _), name in zip(pipes, ("stdout", "stderr", "verdict"))}
        if out.anomaly:
            for r in reads:
                os.close(r)
            self.close(hard=True)
            return out
        bufs = {"stdout": bytearray(), "stderr": bytearray(), "verdict": bytearray()}
        printed = 0
        poller = select.poll()
        for r in reads:
            poller.register(r, select.POLLIN)
        poller.register(self.sock, select.POLLIN)
        pidfd: int | None = None
        deadline = t0 + timeout_s
        killed_at = exited_at = None

        def kill(reason: str) -> None:
            nonlocal killed_at
            if out.killed is None:
                out.killed, killed_at = reason, time.monotonic()
            if pidfd is not None:
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        try:
            while reads or exited_at is None:
                if not reads and out.killed is None and out.complete and pidfd is not None:
                    # The child finished its work and every writer is gone: the zygote's exit
                    # report (sent after its sweep) is collected at the start of the next job.
                    self._owed_exit += 1
                    break
                now = time.monotonic()
                if exited_at is None:
                    if out.killed is None and now >= deadline:
                        kill("timeout")
                    if killed_at is not None and now - killed_at > _EXIT_GRACE_S:
                        out.anomaly = "zygote did not report the exit"
                        break
                    wait = (deadline - now) if out.killed is None else _EXIT_GRACE_S - (now - killed_at)
                elif now - exited_at > _DRAIN_GRACE_S:
                    out.anomaly = "output pipes held open after exit"
                    break
                else:
                    wait = _DRAIN_GRACE_S - (now - exited_at)
                for fd, _ in poller.poll(max(1, int(wait * 1000) + 1)):
                    if fd == self.sock.fileno():
                        try:
                            msg, got = self._recv(0)
                        except (ConnectionError, TimeoutError, OSError) as e:
                            out.anomaly = f"zygote lost: {e}"
                            poller.unregister(fd)
                            kill(out.killed or "stopped") if pidfd is not None else None
                            exited_at = exited_at or time.monotonic()
                            continue
                        if msg["t"] == "started":
                            pidfd = got[0]
                            if out.killed:
                                kill(out.killed)
                        elif msg["t"] == "exit" and self._owed_exit:
                            self._owed_exit -= 1  # the previous job's late report
                            if not msg.get("clean", True):
                                out.anomaly = "work directory not removed"
                        elif msg["t"] == "exit":
                            out.wait_status = msg["status"]
                            exited_at = time.monotonic()
                            if not msg.get("clean", True):
                                out.anomaly = "work directory not removed"
                        continue
                    name = reads[fd]
                    data = os.read(fd, _READ)
                    if not data:
                        poller.unregister(fd)
                        os.close(fd)
                        del reads[fd]
                        continue
                    buf = bufs[name]
                    if name == "verdict":
                        buf += data
                        if len(buf) > _VERDICT_CAP:
                            kill("output_limit")
                            buf.clear()
                            continue
                        while (nl := buf.find(b"\n")) >= 0:
                            line = bytes(buf[:nl])
                            del buf[:nl + 1]
                            try:
                                rec = parse_record(line)
                                ok = type(rec) is dict and rec.pop("n", None) == nonce
                            except (ValueError, RecursionError):
                                ok = False
                            if not ok:
                                out.tampered = True
                                kill("stopped")
                                break
                            out.records.append(rec)
                            if rec.get("k") == "case":
                                deadline = time.monotonic() + timeout_s
                            if on_record is not None and on_record(rec):
                                kill("stopped")
                        continue
                    printed += len(data)
                    if name == "stdout" or len(buf) < _STDERR_KEEP:
                        buf += data
                    if printed > lim.output_bytes:
                        kill("output_limit")
        finally:
            for r in reads:
                os.close(r)
            if pidfd is not None:
                os.close(pidfd)
        if bufs["verdict"] and not out.tampered and out.killed is None:
            out.tampered = True  # a partial line nobody completed
        out.stdout, out.stderr = bytes(bufs["stdout"][:lim.output_bytes]), bytes(bufs["stderr"])
        out.wall_s = time.monotonic() - t0
        if out.anomaly:
            self.close(hard=True)
        return out


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
