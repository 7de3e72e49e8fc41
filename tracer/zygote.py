"""The warm zygote: a single-threaded Python process that forks one child per job.

It is started by the supervisor with subprocess (exec, never a bare fork of the
supervisor), optionally inside bubblewrap, and talks to the supervisor over an
AF_UNIX SOCK_SEQPACKET socket (fd given on the command line).  It never runs
user code itself: each job runs in a forked child that becomes its own session
and process group, drops privileges and applies rlimits before executing
anything untrusted (see ``tracer.harness``).

Protocol (JSON messages; file descriptors travel with SCM_RIGHTS):
  zygote -> supervisor  {"t": "ready", "pid", "uid", "sweep"}
  supervisor -> zygote  {"t": "run", "limits": {...}}  + fds [job, stdin, stdout, stderr, verdict]
  zygote -> supervisor  {"t": "started", "pid"}        + fds [pidfd of the child]
  zygote -> supervisor  {"t": "exit", "status": wait status, "swept": n, "clean": bool}
An empty message (EOF) from the supervisor makes the zygote exit; EOF while a
job runs kills the job first.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import json
import marshal
import os
import resource
import select
import shutil
import signal
import socket
import sys

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)

# Modules children commonly import; loading them once here makes them free after fork. The list
# is short on purpose: every resident page makes fork and exit of each child slower.
_PRELOAD = (
    "bisect collections collections.abc copy functools heapq itertools json math operator random re string "
    "typing tracer.harness"
).split()


def _send(sock: socket.socket, msg: dict, fds: list[int] = ()) -> None:
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _reap_all() -> int:
    """Reap every child (we are a subreaper, so orphans land here too)."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return n
        except InterruptedError:
            continue
        n += pid > 0


def _sweep(mode: str, uid: int | None, pgid: int) -> int:
    """Kill everything a job left behind, then reap it. Returns processes reaped."""
    if mode == "pidns" and os.getpid() > 1 and os.getpid() <= 3:
        # Private pid namespace (bubblewrap): kill(-1) reaches every process in it
        # except its init and ourselves, atomically with respect to fork.
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    elif mode == "uid" and uid is not None:
        # Unique unprivileged uid per zygote: become that uid for one kill(-1).
        os.setresuid(uid, uid, 0)
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.setresuid(0, 0, 0)
    else:  # best effort: the job's group, then every child until none is left
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for _ in range(1000):
            kids = _children()
            if not kids:
                break
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break
    return _reap_all()


def _wipe(tmp: str, workdir: str) -> bool:
    """Empty the zygote's temp dir (the job's work dir and whatever it wrote to /tmp)."""
    try:
        os.rmdir(workdir)  # the common case: the job wrote nothing
        if not os.listdir(tmp):
            return True
    except OSError:
        pass
    with os.scandir(tmp) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass
    return not os.listdir(tmp)


def _children() -> list[int]:
    me, out = os.getpid(), []
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def _close_from(low: int) -> None:
    if _libc.close_range(low, 0xFFFFFFFF, 0) != 0:  # kernel >= 5.9
        os.closerange(low, 1 << 16)


def _child(hdr: dict, fds: list[int], workdir: str, uid: int | None) -> None:
    """In the forked child: isolate, limit, drop privileges, then run the harness."""
    try:
        os.setsid()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]  # avoid clobbering
        stdin_fd, out_fd, err_fd, ver_fd, job_fd = high[1], high[2], high[3], high[4], high[0]
        for fd, target in ((stdin_fd, 0), (out_fd, 1), (err_fd, 2), (ver_fd, 3), (job_fd, 4)):
            os.dup2(fd, target)
        _close_from(5)  # the control socket, the originals, anything else
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG
        with os.fdopen(4, "rb") as f:
            job = marshal.loads(f.read())
        os.chdir(workdir)
        lim = hdr["limits"]
        for name, value in (("RLIMIT_CPU", lim["cpu_s"]), ("RLIMIT_AS", lim["as_bytes"]),
                            ("RLIMIT_FSIZE", lim["file_bytes"]), ("RLIMIT_NOFILE", lim["nofile"]),
                            ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", lim["nproc"])):
            if value is not None:
                hard = value + 1 if name == "RLIMIT_CPU" else value
                resource.setrlimit(getattr(resource, name), (value, hard))
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.environ.clear()
        os.environ.update(hdr["env"])
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        from tracer import harness

        harness.main(job, verdict_fd=3)
    except BaseException:  # noqa: BLE001 - nothing may escape into the zygote's loop
        pass
    os._exit(70)


def _site_builtins() -> None:
    """We run with -S (no .pth file executes): add the builtins the site module would (exit, quit, help)."""
    import builtins
    import _sitebuiltins

    builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
    builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
    builtins.help = _sitebuiltins._Helper()


def main(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    ctl = socket.socket(fileno=cfg["fd"])
    uid: int | None = cfg.get("uid")
    mode: str = cfg["sweep"]
    tmp: str = cfg["tmp"]
    os.makedirs(tmp, exist_ok=True)
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.set_int_max_str_digits(0)
    _site_builtins()
    for name in _PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is fine
            pass
    gc.collect()
    gc.freeze()  # keep preloaded objects out of the collector: fewer copy-on-write faults
    _send(ctl, {"t": "ready", "pid": os.getpid(), "uid": uid, "sweep": mode})
    n = 0
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 8)
        except OSError:
            break
        if not data:
            break
        hdr = json.loads(data)
        n += 1
        workdir = f"{tmp}/job{n}"
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        pid = os.fork()
        if pid == 0:
            _child(hdr, fds, workdir, uid)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        _send(ctl, {"t": "started", "pid": pid}, [pidfd])
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(ctl, select.POLLIN)
        supervisor_gone = False
        while True:
            events = dict(poller.poll())
            if pidfd in events:
                break
            ev = events.get(ctl.fileno(), 0)
            if ev & (select.POLLHUP | select.POLLERR):  # the supervisor is gone
                supervisor_gone = True
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                poller.unregister(ctl)
            elif ev:  # the next job, queued early: read it after this one
                poller.unregister(ctl)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        swept = _sweep(mode, uid, pid)
        clean = _wipe(tmp, workdir)
        if supervisor_gone:
            break
        _send(ctl, {"t": "exit", "status": status, "swept": swept, "clean": clean})


if __name__ == "__main__":
    main(sys.argv[1:])
