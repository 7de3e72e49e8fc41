"""In-child code: runs one job's untrusted program and reports on the private verdict channel.

This module runs *inside* the sandboxed child (forked from the zygote, after
limits and privilege drop). It never sees expected outputs for the stdio and
call styles: it reports what the program did (a completion record per test,
with the return value for call style; stdout travels on fd 1) and the
supervisor judges. Records are JSON lines on fd 3 carrying the job's nonce:

  {"n": nonce, "k": "case", "i": index, "s": "ok" | "error" | "memory_limit" | "exited_early",
   "v": value (call style), "np": reason the value is not plain data, "err": message, "t": seconds}
  {"n": nonce, "k": "syntax_error", "where": "program" | "test", "err": message, "line": int}
  {"n": nonce, "k": "trace", "r": trace_program result}
  {"n": nonce, "k": "end"}

A job whose "end" record is missing exited early. The program shares this
process, so it can write to fd 3 too; without the nonce its lines are rejected
and any malformed line fails the job, so writing to the channel can only hurt.
Assert style (HumanEval / MBPP) necessarily runs the test code, which holds the
expected values, in the same process; see docs/tracer.md for the residual risk
and what is done about it.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import sys
import time
from typing import Any, Callable

try:  # preloaded in the zygote so trace jobs start warm
    from tracer import tracing  # noqa: F401
except Exception:  # noqa: BLE001 - run_trace reports the failure
    pass

_PRISTINE_BUILTINS = dict(vars(builtins))  # snapshot taken in the zygote, before any user code
_PLAIN_SCALARS = (int, float, str, bool, type(None))
_MAX_DEPTH = 100
_MAX_NODES = 1_000_000


class Channel:
    """Writes nonce-tagged JSON lines to the verdict fd."""

    def __init__(self, fd: int, nonce: str):
        self._fd, self._nonce = fd, nonce

    def send(self, *records: dict) -> None:
        """Write the records as one write (the supervisor wakes once for all of them)."""
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)  # huge ints cross the channel exactly; the program keeps its limit
        try:
            lines = []
            for record in records:
                record["n"] = self._nonce
                lines.append(json.dumps(record, ensure_ascii=True, allow_nan=True) + "\n")
            data = "".join(lines).encode()
        finally:
            sys.set_int_max_str_digits(limit)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]


class NotPlain(Exception):
    """A return value that is not plain JSON-like data (opaque object, cycle, too deep, too big)."""


def to_plain(x: Any) -> Any:
    """JSON form of a return value, as ``json.dumps`` would write it (tuples as lists, dict keys as
    strings), checking exact builtin types only, so no user ``__eq__``/``__hash__``/``__repr__`` runs."""
    budget = [_MAX_NODES]
    on_path: set[int] = set()

    def walk(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise NotPlain("value too large")
        t = type(v)
        if t in _PLAIN_SCALARS:
            return v
        if depth >= _MAX_DEPTH:
            raise NotPlain("value nested too deeply")
        if t is list or t is tuple or t is dict:
            if id(v) in on_path:
                raise NotPlain("cyclic value")
            on_path.add(id(v))
            try:
                if t is dict:
                    return {_key(k): walk(item, depth + 1) for k, item in dict.items(v)}
                return [walk(item, depth + 1) for item in v]
            finally:
                on_path.discard(id(v))
        raise NotPlain(f"value of type {_type_name(v)}")

    return walk(x, 0)


def _key(k: Any) -> str:
    t = type(k)
    if t is str:
        return k
    if t is bool or k is None:
        return json.dumps(k)
    if t is int:
        return str(k)
    if t is float:
        return json.dumps(k)
    raise NotPlain(f"dict key of type {_type_name(k)}")


def _type_name(v: Any) -> str:
    return type.__dict__["__name__"].__get__(type(v))


def describe(exc: BaseException) -> str:
    """'Type: message' without running user-defined __str__/__repr__."""
    name = _type_name(exc)
    args = BaseException.__dict__["args"].__get__(exc)
    if type.__dict__["__module__"].__get__(type(exc)) == "builtins" and all(type(a) in (str, int, float) for a in args):
        try:
            msg = BaseException.__str__(exc)
        except Exception:  # noqa: BLE001
            msg = ""
        return f"{name}: {msg[:1000]}" if msg else name
    return name


def _case_status(exc: BaseException) -> str:
    if issubclass(type(exc), MemoryError):
        return "memory_limit"
    if issubclass(type(exc), SystemExit):
        return "exited_early"
    return "error"


def _compile(src: str, name: str, ch: Channel, where: str):
    try:
        return compile(src, name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError) as e:
        line, err = None, describe(e)
        if type(e) in (SyntaxError, IndentationError, TabError):
            line, err = e.lineno, f"{type(e).__name__}: {e.msg}"
        ch.send({"k": "syntax_error", "where": where, "err": err, "line": line})
        return None


def _make_streams() -> tuple:
    """Text streams over fds 0/1/2 (lone surrogates are escaped instead of raising)."""
    return (io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                             errors="surrogateescape"),
            io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False), 1 << 16), encoding="utf-8",
                             errors="backslashreplace"),
            io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                             write_through=True))


_PREPARED_STREAMS: tuple | None = None


def prepare_streams() -> None:
    """In the zygote: build the children's streams once, each child then gets its own copy-on-write
    copy, never used before. While they are built, fds 0/1/2 are of the kinds a child has (stdin a
    memfd, stdout and stderr pipes), so what the objects cache (seekable, position) is the child's."""
    global _PREPARED_STREAMS
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    mem = os.memfd_create("tracer-stdin")
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        for fd, target in ((mem, 0), (w1, 1), (w2, 2)):
            os.dup2(fd, target)
        _PREPARED_STREAMS = _make_streams()
    finally:
        for fd, orig in zip((0, 1, 2), saved):
            os.dup2(orig, fd)
            os.close(orig)
        for fd in (mem, r1, w1, r2, w2):
            os.close(fd)


def _streams() -> None:
    # The prepared streams assume the fd kinds Zygote.run always passes (memfd stdin, pipe stdout/stderr).
    streams = _PREPARED_STREAMS or _make_streams()
    sys.stdin = sys.__stdin__ = streams[0]
    sys.stdout = sys.__stdout__ = streams[1]
    sys.stderr = sys.__stderr__ = streams[2]


def _flush() -> None:
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have closed fd 1
            pass


def _finish(ch: Channel, complete: bool = True, last: dict | None = None) -> None:
    """Flush the program's output, send ``last`` and (if ``complete``) the end record, exit."""
    _flush()
    records = [last] if last is not None else []
    if complete:
        records.append({"k": "end"})
    if records:
        ch.send(*records)
    os._exit(0)


def run_stdio(job: dict, ch: Channel) -> None:
    code = _compile(job["program"], "<program>", ch, "program")
    if code is None:
        _finish(ch)
    rec: dict = {"k": "case", "i": job["index"], "s": "ok"}
    t0 = time.perf_counter()
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:  # sys.exit() ends a stdio program normally; a non-zero code is an error
        code_ = e.code if type(e) is SystemExit else 1
        if not (code_ is None or (type(code_) is int and code_ == 0)):
            rec.update(s="error", err=f"SystemExit: {code_ if type(code_) in (int, str) else 1}")
    except BaseException as e:  # noqa: BLE001
        rec.update(s=_case_status(e), err=describe(e))
        del e
    rec["t"] = time.perf_counter() - t0
    _finish(ch, last=rec)


def _call_target(g: dict, fn_name: str) -> Callable[[], Callable]:
    """A factory for the callable under test: a method of a fresh ``Solution()`` or a function."""
    sol = g.get("Solution")
    if isinstance(sol, type) and fn_name in getattr(sol, "__dict__", {}):
        return lambda: getattr(sol(), fn_name)
    fn = g.get(fn_name)
    if callable(fn):
        return lambda: fn
    raise NameError(f"function {fn_name!r} is not defined")


def run_call(job: dict, ch: Channel) -> None:
    code = _compile(job["program"], "<program>", ch, "program")
    if code is None:
        _finish(ch)
    g: dict = {"__name__": "__sandbox__", "__builtins__": builtins}
    try:
        exec(code, g)
        factory = _call_target(g, job["fn_name"])
    except BaseException as e:  # noqa: BLE001 - the whole program failed before any call
        ch.send({"k": "case", "i": 0, "s": _case_status(e), "err": describe(e), "t": 0.0})
        _finish(ch, complete=not issubclass(type(e), SystemExit))
    for i, args in enumerate(job["inputs"]):
        rec: dict = {"k": "case", "i": i, "s": "ok"}
        t0 = time.perf_counter()
        try:
            fn = factory()
            result = fn(**args) if type(args) is dict else fn(*args)
            try:
                rec["v"] = to_plain(result)
            except NotPlain as e:
                rec["np"] = str(e)
            del result
        except BaseException as e:  # noqa: BLE001
            rec.update(s=_case_status(e), err=describe(e))
            del e
        rec["t"] = time.perf_counter() - t0
        _flush()
        ch.send(rec)
        if rec["s"] == "exited_early":
            _finish(ch, complete=False)
    _finish(ch)


class _Guard:
    """Passed to check() instead of the entry point: rejects return values that are not plain
    builtin data, so an object with a forged ``__eq__`` cannot satisfy ``assert f(x) == y``."""

    _OK = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset, range)

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.fn(*args, **kwargs)
        stack, seen, budget = [(result, 0)], set(), _MAX_NODES
        while stack:
            v, depth = stack.pop()
            budget -= 1
            t = type(v)
            if t not in self._OK or budget < 0 or depth > _MAX_DEPTH:
                raise TypeError(f"entry point returned a value of type {_type_name(v)}, not plain data")
            if t in (list, tuple, set, frozenset) and id(v) not in seen:
                seen.add(id(v))
                stack.extend((item, depth + 1) for item in v)
            elif t is dict and id(v) not in seen:
                seen.add(id(v))
                for k, item in dict.items(v):
                    stack.append((k, depth + 1))
                    stack.append((item, depth + 1))
        return result


def run_assert(job: dict, ch: Channel) -> None:
    code = _compile(job["program"], "<program>", ch, "program")
    test = _compile(job["test"], "<test>", ch, "test") if code is not None else None
    if code is None or test is None:
        _finish(ch)
    entry = job.get("entry_point") or ""
    rec: dict = {"k": "case", "i": 0, "s": "ok"}
    t0 = time.perf_counter()
    try:
        g: dict = {"__name__": "__sandbox__", "__builtins__": builtins}
        exec(code, g)
        # The test runs on a copy of the program's namespace with pristine builtins, and sees the
        # entry point through the guard (the program's own recursive calls do not).
        tg = dict(g)
        tg["__builtins__"] = _PRISTINE_BUILTINS  # this child's own copy-on-write copy, used once
        if entry:
            if not callable(g.get(entry)):
                raise NameError(f"entry point {entry!r} is not defined")
            tg[entry] = _Guard(g[entry])
        exec(test, tg)
        check = tg.get("check")
        if entry and callable(check) and getattr(getattr(check, "__code__", None), "co_filename", "") == "<test>":
            check(tg[entry])
    except BaseException as e:  # noqa: BLE001
        rec.update(s=_case_status(e), err=describe(e))
        del e
    rec["t"] = time.perf_counter() - t0
    _finish(ch, complete=rec["s"] != "exited_early", last=rec)


def run_trace(job: dict, ch: Channel) -> None:
    from tracer import tracing as tr

    try:
        res = tr.trace_program(job["program"], job.get("stdin", ""), targets=job.get("targets"),
                               per_line=bool(job.get("per_line")), max_events=int(job.get("max_events", 10_000)))
    except MemoryError:
        res = {"status": "exception", "exception": {"type": "MemoryError", "message": "", "line": None}}
    except BaseException as e:  # noqa: BLE001 - a tracer failure is ours, not the program's
        _flush()
        ch.send({"k": "trace_error", "err": describe(e)})
        _finish(ch)
    _finish(ch, last={"k": "trace", "r": res})


_RUNNERS = {"stdio": run_stdio, "call": run_call, "assert": run_assert, "trace": run_trace}


def main(job: dict, verdict_fd: int) -> None:
    """Entry point in the child: never returns."""
    ch = Channel(verdict_fd, job.pop("nonce"))
    sys.argv = ["<program>"]
    sys.set_int_max_str_digits(sys.int_info.default_max_str_digits)  # the program sees CPython's default
    _streams()
    _RUNNERS[job["kind"]](job, ch)
    _finish(ch)
