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
import struct
import sys

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)
_harness = None  # tracer.harness, imported in main()
_JSON_BOOL = {True: b"true", False: b"false"}
_FD_BOUND = max(1 << 16, resource.getrlimit(resource.RLIMIT_NOFILE)[0])

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


def _tree(tmp: str) -> set[str]:
    """Every path below `tmp`, not descending into mount points (read-only binds of our code)."""
    paths: set[str] = set()
    for root, dirs, files in os.walk(tmp):
        inside = []
        for d in dirs:
            full = os.path.join(root, d)
            paths.add(full)
            if not os.path.ismount(full):
                inside.append(d)
        dirs[:] = inside
        paths.update(os.path.join(root, f) for f in files)
    return paths


def _wipe(tmp: str, workdir: str, keep: frozenset[str] = frozenset()) -> bool:
    """Empty the zygote's temp dir (the job's work dir and whatever it wrote to /tmp), except the
    paths present before the first job (`keep`: read-only binds of the code the zygote runs and
    their parent directories). Returns whether only those remain."""
    try:
        os.rmdir(workdir)  # the common case: the job wrote nothing
        if not keep and not os.listdir(tmp):
            return True
    except OSError:
        pass
    for path in sorted(_tree(tmp) - keep, key=len):
        if not os.path.lexists(path):
            continue  # removed with its parent
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    return _tree(tmp) <= keep


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
    # CPython uses the close_range syscall here (kernel >= 5.9); no fd can exceed the soft limit.
    os.closerange(low, _FD_BOUND)


def _child(hdr: dict, fds: list[int], workdir: str, uid: int | None) -> None:
    """In the forked child: isolate, limit, drop privileges, then run the harness.

    Everything that is the same for every job (signal dispositions, the scrubbed environment,
    the harness import) was done once in the zygote before forking: each Python-level step
    here dirties copy-on-write pages, and those page faults are most of a job's cost."""
    try:
        os.setsid()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]  # avoid clobbering
        for fd, target in zip(high, (4, 0, 1, 2, 3)):  # job, stdin, stdout, stderr, verdict
            os.dup2(fd, target)
        _close_from(5)  # the control socket, the originals, anything else
        size = os.fstat(4).st_size
        data = os.read(4, size) if size else b""
        while len(data) < size:
            chunk = os.read(4, size - len(data))
            if not chunk:
                break
            data += chunk
        os.close(4)
        job = marshal.loads(data)
        del data
        os.chdir(workdir)
        lim = hdr["limits"]
        for res, value in ((resource.RLIMIT_CPU, lim["cpu_s"]), (resource.RLIMIT_AS, lim["as_bytes"]),
                           (resource.RLIMIT_FSIZE, lim["file_bytes"]), (resource.RLIMIT_NOFILE, lim["nofile"]),
                           (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, lim["nproc"])):
            if value is not None:
                resource.setrlimit(res, (value, value + 1 if res == resource.RLIMIT_CPU else value))
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _harness.main(job, verdict_fd=3)
    except BaseException:  # noqa: BLE001 - nothing may escape into the zygote's loop
        pass
    os._exit(70)


def _job_environment(env: dict[str, str], workdir: str) -> None:
    """Make the zygote's own environment exactly the jobs' (children inherit it as is)."""
    os.environ.clear()
    os.environ.update(env)
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir


def _job_signals() -> None:
    """Signal dispositions every job starts with (inherited through fork)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGALRM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes fail with EFBIG


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
    # no_new_privs is inherited through fork and can never be cleared: set once here, it holds for
    # every child (the zygote itself never executes anything).
    if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    _job_signals()
    sys.set_int_max_str_digits(0)
    _site_builtins()
    for name in _PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing optional module is fine
            pass
    global _harness
    from tracer import harness as _harness

    _harness.prepare_streams()

    # One work directory name for every job (the previous one is removed before the next starts),
    # so the environment that names it is set once here, not in each child.
    workdir = f"{tmp}/job"
    if os.path.isdir(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    keep = frozenset(_tree(tmp))  # read-only binds of the zygote's own code (see sandbox.py)
    _job_environment(cfg["env"], workdir)
    gc.collect()
    gc.freeze()  # keep preloaded objects out of the collector: fewer copy-on-write faults
    _send(ctl, {"t": "ready", "pid": os.getpid(), "uid": uid, "sweep": mode})
    # Each fork write-protects every page of this process (copy-on-write, shared with the child),
    # so every page the loop below writes costs a page fault per job, and a 4 KiB copy while the
    # child lives. The loop touches as few objects as it can: C functions bound here, one poller,
    # messages formatted as bytes (json and socket.send_fds cost ~30 faults a job).
    sendmsg, recvmsg, fork, waitpid, close, pidfd_open = (ctl.sendmsg, ctl.recvmsg, os.fork, os.waitpid, os.close,
                                                          os.pidfd_open)
    rights, fd_space = (socket.SOL_SOCKET, socket.SCM_RIGHTS), socket.CMSG_SPACE(8 * 4)  # up to 8 int fds
    poller = select.poll()
    poller.register(ctl, select.POLLIN)
    ctl_fd, ctl_gone, pollin = ctl.fileno(), select.POLLHUP | select.POLLERR, select.POLLIN
    while True:
        try:
            data, ancillary, _, _ = recvmsg(1 << 16, fd_space)
        except OSError:
            break
        if not data:
            break
        fds = [fd for level, kind, payload in ancillary if (level, kind) == rights
               for fd in struct.unpack(f"{len(payload) // 4}i", payload[:len(payload) // 4 * 4])]
        hdr = json.loads(data)
        try:
            os.mkdir(workdir, 0o700)
        except FileExistsError:  # left over by a job whose wipe failed (reported as not clean)
            shutil.rmtree(workdir, ignore_errors=True)
            os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        pid = fork()
        if pid == 0:
            _child(hdr, fds, workdir, uid)
        for fd in fds:
            close(fd)
        pidfd = pidfd_open(pid)
        sendmsg([b'{"t": "started", "pid": %d}' % pid], [(*rights, struct.pack("i", pidfd))])
        poller.register(pidfd, pollin)
        supervisor_gone = ctl_muted = False
        while True:
            events = dict(poller.poll())
            if pidfd in events:
                break
            ev = events.get(ctl_fd, 0)
            if ev & ctl_gone:  # the supervisor is gone
                supervisor_gone = True
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            # else: the next job, queued early: read it after this one
            if ev:
                poller.unregister(ctl)
                ctl_muted = True
        poller.unregister(pidfd)
        _, status = waitpid(pid, 0)
        close(pidfd)
        swept = _sweep(mode, uid, pid)
        clean = _wipe(tmp, workdir, keep)
        if supervisor_gone:
            break
        if ctl_muted:
            poller.register(ctl, pollin)
        sendmsg([b'{"t": "exit", "status": %d, "swept": %d, "clean": %s}' % (status, swept, _JSON_BOOL[clean])])

if __name__ == "__main__":
    main(sys.argv[1:])
