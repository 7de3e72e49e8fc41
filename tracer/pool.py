"""In-process pool with a batch API: the trainer's default way to use the tracer.

``TracerPool(workers=N)`` owns N worker threads, each with its own zygote(s)
(one per PYTHONHASHSEED it needs). ``run_tests(requests)`` and
``trace(requests)`` take a list of request dicts (the HTTP contract, see
docs/tracer.md) and return results in request order, each carrying the
request's ``id`` (or its index as a string). Admission is bounded: a batch that
does not fit in the queue within ``admit_timeout_s`` raises :class:`QueueFull`
(the HTTP service answers 503) instead of waiting forever.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Iterable

from tracer import judge
from tracer.sandbox import Layers, Limits, Outcome, Zygote, detect_layers

RUN_STATUSES = ("passed", "failed", "timeout", "memory_limit", "output_limit", "crashed", "exited_early",
                "syntax_error", "sandbox_error")
TRACE_STATUSES = ("ok", "exception", "timeout", "memory_limit", "output_limit", "crashed", "syntax_error",
                  "sandbox_error")
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE, signal.SIGSYS,
                  signal.SIGTRAP}
_PREVIEW = 200
_TAIL = 2000


class QueueFull(RuntimeError):
    """The pool cannot take the batch now (backpressure); retry later."""


class RequestError(ValueError):
    """A malformed request (names the request and the field)."""


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "..."


def _process_status(o: Outcome, started: bool = True) -> str:
    """Status of a child that did not finish its work normally."""
    if o.killed == "timeout":
        return "timeout"
    if o.killed == "output_limit":
        return "output_limit"
    if o.tampered:
        return "failed"
    if o.anomaly and not started:
        return "sandbox_error"
    if o.signal == signal.SIGXCPU:
        return "timeout"
    if b"MemoryError" in o.stderr:
        return "memory_limit"
    if o.signal in _CRASH_SIGNALS:
        return "crashed"
    return "exited_early"


# ----------------------------------------------------------------------------- request validation
def _need(req: dict, key: str, types: type | tuple, where: str) -> Any:
    if key not in req:
        raise RequestError(f"{where}: missing field {key!r}")
    value = req[key]
    if not isinstance(value, types):
        raise RequestError(f"{where}: field {key!r} must be {types}, got {type(value).__name__}")
    return value


def _check_run_request(req: Any, where: str) -> None:
    if not isinstance(req, dict):
        raise RequestError(f"{where}: a request must be an object")
    _need(req, "program", str, where)
    tests = _need(req, "tests", dict, where)
    style = tests.get("style")
    if style == "stdio":
        ins, outs = _need(tests, "inputs", list, where + ".tests"), _need(tests, "outputs", list, where + ".tests")
        if len(ins) != len(outs) or not all(isinstance(x, str) for x in ins + outs):
            raise RequestError(f"{where}.tests: stdio inputs and outputs must be equally long lists of str")
    elif style == "call":
        _need(tests, "fn_name", str, where + ".tests")
        ins, outs = _need(tests, "inputs", list, where + ".tests"), _need(tests, "outputs", list, where + ".tests")
        if len(ins) != len(outs) or not all(isinstance(x, (list, dict)) for x in ins):
            raise RequestError(f"{where}.tests: call inputs must be a list of argument lists, as long as outputs")
    elif style == "assert":
        _need(tests, "test", str, where + ".tests")
        if not isinstance(tests.get("entry_point", ""), str):
            raise RequestError(f"{where}.tests: entry_point must be a string")
    else:
        raise RequestError(f"{where}.tests: style must be 'stdio', 'call' or 'assert', got {style!r}")
    if "timeout_s" in req and not isinstance(req["timeout_s"], (int, float)):
        raise RequestError(f"{where}: timeout_s must be a number")


def _check_trace_request(req: Any, where: str) -> None:
    if not isinstance(req, dict):
        raise RequestError(f"{where}: a request must be an object")
    _need(req, "program", str, where)
    if not isinstance(req.get("stdin", ""), str):
        raise RequestError(f"{where}: stdin must be a string")
    if req.get("targets") is not None and not (isinstance(req["targets"], list)
                                                and all(isinstance(t, str) for t in req["targets"])):
        raise RequestError(f"{where}: targets must be a list of str or null")
    if "timeout_s" in req and not isinstance(req["timeout_s"], (int, float)):
        raise RequestError(f"{where}: timeout_s must be a number")


# ----------------------------------------------------------------------------- one worker
class Worker:
    """Runs requests on its own zygotes (created lazily, recycled after N jobs or any anomaly)."""

    def __init__(self, layers: Layers, limits: Limits, max_jobs: int):
        self.layers, self.limits, self.max_jobs = layers, limits, max_jobs
        self.zygotes: dict[int, Zygote] = {}

    def close(self) -> None:
        for z in self.zygotes.values():
            z.close()
        self.zygotes.clear()

    def _zygote(self, seed: int) -> Zygote:
        z = self.zygotes.get(seed)
        if z is not None and (not z.alive or z.jobs >= self.max_jobs):
            z.close(hard=not z.alive)
            z = None
        if z is None:
            z = self.zygotes[seed] = Zygote(self.layers, self.limits, seed=seed, max_jobs=self.max_jobs)
        return z

    def run(self, seed: int, job: dict, stdin: bytes, timeout_s: float, cpu_s: float,
            on_record: Callable[[dict], bool] | None = None) -> Outcome:
        try:
            z = self._zygote(seed)
        except Exception as e:  # noqa: BLE001 - reported as sandbox_error
            self.zygotes.pop(seed, None)
            return Outcome(anomaly=f"cannot start zygote: {e}")
        out = z.run(job, stdin, timeout_s, cpu_s, on_record)
        if out.anomaly:
            self.zygotes.pop(seed, None)
        return out

    # -- run_tests ---------------------------------------------------------------------------
    def run_tests(self, req: dict, seed: int) -> dict:
        t0 = time.monotonic()
        tests, program = req["tests"], req["program"]
        timeout = min(float(req.get("timeout_s", self.limits.timeout_s)), self.limits.max_timeout_s)
        stop = bool(req.get("stop_on_failure", True))
        style = tests["style"]
        n = 1 if style == "assert" else len(tests["inputs"])
        cases: list[dict | None] = [None] * n
        res: dict[str, Any] = {"passed": False, "status": "failed"}
        if len(program.encode("utf-8", "surrogatepass")) > self.limits.max_program_bytes:
            res.update(status="sandbox_error", error=f"program larger than {self.limits.max_program_bytes} bytes")
            cases = [{"status": "skipped"} for _ in range(n)]
        elif style == "stdio":
            self._stdio(program, tests, timeout, stop, seed, cases, res)
        else:
            self._in_process(program, tests, timeout, stop, seed, cases, res)
        tests_out = [c if c is not None else {"status": "skipped"} for c in cases]
        for i, c in enumerate(tests_out):
            c.setdefault("index", i)
        if res["status"] not in ("syntax_error", "sandbox_error") and not res.get("tampered"):
            bad = [c["status"] for c in tests_out if c["status"] not in ("passed", "skipped")]
            res["status"] = bad[0] if bad else ("passed" if all(c["status"] == "passed" for c in tests_out)
                                                else "failed")
        res["passed"] = res["status"] == "passed"
        res["tests"] = tests_out
        res["time_s"] = round(time.monotonic() - t0, 4)
        return res

    def _stdio(self, program: str, tests: dict, timeout: float, stop: bool, seed: int,
               cases: list, res: dict) -> None:
        for i, (stdin, want) in enumerate(zip(tests["inputs"], tests["outputs"])):
            o = self.run(seed, {"kind": "stdio", "program": program, "index": i},
                         stdin.encode("utf-8", "surrogateescape"), timeout, timeout)
            rec = next((r for r in o.records if r.get("k") in ("case", "syntax_error")), None)
            if rec is not None and rec["k"] == "syntax_error":
                res.update(status="syntax_error", error=rec.get("err"), line=rec.get("line"))
                for j in range(len(cases)):
                    cases[j] = {"status": "syntax_error"}
                return
            case: dict[str, Any] = {"time_s": round(o.wall_s, 4)}
            if o.killed in ("timeout", "output_limit") or rec is None or not o.complete or o.tampered:
                case["status"] = _process_status(o, started=bool(o.records) or o.wait_status is not None)
                if o.tampered:
                    case["error"] = "verdict channel tampered"
                elif case["status"] == "sandbox_error":
                    case["error"] = o.anomaly
            elif rec["s"] == "ok":
                got = _decode(o.stdout)
                ok = judge.stdout_matches(got, want)
                case["status"] = "passed" if ok else "failed"
                if not ok:
                    case["stdout"] = _preview(got)
            else:
                case["status"] = "memory_limit" if rec["s"] == "memory_limit" else "failed"
                case["error"] = rec.get("err")
            if case["status"] == "sandbox_error":
                res.update(status="sandbox_error", error=o.anomaly)
            if o.stderr and case["status"] != "passed":
                case["stderr"] = _decode(o.stderr[-_TAIL:])
            cases[i] = case
            if case["status"] != "passed" and (stop or case["status"] == "sandbox_error"):
                return

    def _in_process(self, program: str, tests: dict, timeout: float, stop: bool, seed: int,
                    cases: list, res: dict) -> None:
        """call and assert styles: one process runs every case; records are judged as they arrive."""
        style = tests["style"]
        if style == "call":
            job = {"kind": "call", "program": program, "fn_name": tests["fn_name"], "inputs": tests["inputs"]}
            wants = tests["outputs"]
        else:
            job = {"kind": "assert", "program": program, "test": tests["test"],
                   "entry_point": tests.get("entry_point", "")}
            wants = [None]
        last = [time.monotonic()]

        def on_record(rec: dict) -> bool:
            if rec.get("k") != "case":
                return False
            i = rec.get("i")
            if type(i) is not int or not 0 <= i < len(cases) or cases[i] is not None:
                res.update(status="failed", tampered=True, error="verdict channel out of protocol")
                return True
            now = time.monotonic()
            case: dict[str, Any] = {"time_s": round(now - last[0], 4)}
            last[0] = now
            s = rec.get("s")
            if s == "ok" and style == "call":
                if "np" in rec:
                    case.update(status="failed", error=f"return value is not plain data: {rec['np']}")
                elif judge.value_matches(rec.get("v"), wants[i]):
                    case["status"] = "passed"
                else:
                    case.update(status="failed", got=_preview(_json_preview(rec.get("v"))))
            elif s == "ok":
                case["status"] = "passed"
            else:
                case["status"] = {"memory_limit": "memory_limit", "exited_early": "exited_early"}.get(s, "failed")
                if rec.get("err"):
                    case["error"] = rec["err"]
            cases[i] = case
            return stop and case["status"] != "passed"

        o = self.run(seed, job, b"", timeout, timeout * len(cases), on_record)
        syn = next((r for r in o.records if r.get("k") == "syntax_error"), None)
        if syn is not None:
            res.update(status="syntax_error", error=syn.get("err"), line=syn.get("line"), where=syn.get("where"))
            for j in range(len(cases)):
                cases[j] = {"status": "syntax_error"}
            return
        if o.tampered:
            res.update(status="failed", tampered=True, error="verdict channel tampered")
        if o.killed == "stopped" and not o.tampered and not res.get("tampered"):
            return  # stopped on purpose after a failed case; the rest stay skipped
        unfinished = next((i for i, c in enumerate(cases) if c is None), None)
        if unfinished is not None:
            status = _process_status(o, started=bool(o.records) or o.wait_status is not None)
            case = {"status": status, "time_s": round(time.monotonic() - last[0], 4)}
            if status == "sandbox_error":
                res.update(status="sandbox_error", error=o.anomaly)
            if o.stderr:
                case["stderr"] = _decode(o.stderr[-_TAIL:])
            cases[unfinished] = case
        elif not o.complete and not o.killed:
            # every case reported but the program then left without the end record (e.g. os._exit
            # in a late hook): treat as an early exit rather than trusting the partial run
            res.update(status="exited_early")
            res["tampered"] = True

    # -- trace ---------------------------------------------------------------------------------
    def trace(self, req: dict, seeds: tuple[int, int]) -> dict:
        res = self._trace_once(req, seeds[0])
        if req.get("check_determinism"):
            other = self._trace_once(req, seeds[1])
            res["nondeterministic"] = _trace_key(res) != _trace_key(other)
            res["time_s"] = round(res["time_s"] + other["time_s"], 4)
        return res

    def _trace_once(self, req: dict, seed: int) -> dict:
        timeout = min(float(req.get("timeout_s", self.limits.timeout_s)), self.limits.max_timeout_s)
        res: dict[str, Any] = {"status": "ok", "stdout": "", "variables": {}, "exception": None}
        program = req["program"]
        if len(program.encode("utf-8", "surrogatepass")) > self.limits.max_program_bytes:
            res.update(status="sandbox_error", error=f"program larger than {self.limits.max_program_bytes} bytes",
                       time_s=0.0)
            return res
        stdin = req.get("stdin", "") or ""
        job = {"kind": "trace", "program": program, "stdin": stdin, "targets": req.get("targets"),
               "per_line": bool(req.get("per_line")), "max_events": int(req.get("max_events", 10_000))}
        o = self.run(seed, job, stdin.encode("utf-8", "surrogateescape"), timeout, timeout)
        rec = next((r for r in o.records if r.get("k") in ("trace", "trace_error")), None)
        res["stdout"] = _decode(o.stdout)
        if o.killed in ("timeout", "output_limit"):
            res["status"] = o.killed
        elif o.tampered:
            res.update(status="crashed", error="verdict channel tampered")
        elif rec is not None and rec["k"] == "trace_error":
            res.update(status="sandbox_error", error=f"tracer failed: {rec.get('err')}")
        elif rec is not None and isinstance(rec.get("r"), dict):
            r = rec["r"]
            exc = r.get("exception")
            status = r.get("status", "ok")
            if status == "exception" and isinstance(exc, dict) and exc.get("type") == "MemoryError":
                status = "memory_limit"
            res.update(status=status if status in TRACE_STATUSES else "crashed", variables=r.get("variables", {}),
                       exception=exc, exit_code=r.get("exit_code"), tracer_disabled=bool(r.get("tracer_disabled")))
            if req.get("per_line"):
                res.update(events=r.get("events", []), events_truncated=bool(r.get("events_truncated")))
        else:
            status = _process_status(o, started=o.wait_status is not None)
            res["status"] = "crashed" if status in ("exited_early", "failed") else status
            res["error"] = o.anomaly if status == "sandbox_error" else "the program ended before the trace completed"
        if o.stderr and res["status"] != "ok":
            res["stderr"] = _decode(o.stderr[-_TAIL:])
        res["time_s"] = round(o.wall_s, 4)
        return res


def _json_preview(v: Any) -> str:
    import json

    try:
        return json.dumps(v)[: _PREVIEW + 1]
    except (ValueError, RecursionError):
        return "<unprintable>"


def _trace_key(res: dict) -> tuple:
    variables = res.get("variables") or {}
    return (res.get("status"), res.get("stdout"), res.get("exception"),
            sorted((k, repr(v.get("value")) if isinstance(v, dict) else repr(v)) for k, v in variables.items()))


def _check_requests(kind: str, requests: list) -> None:
    check = _check_run_request if kind == "run_tests" else _check_trace_request
    for i, req in enumerate(requests):
        check(req, f"request {i} (id {req.get('id')!r})" if isinstance(req, dict) else f"request {i}")


# ----------------------------------------------------------------------------- the pool
class TracerPool:
    """Thread pool of sandbox workers with a bounded queue. Use as a context manager or call close()."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, *, max_queue: int = 10_000,
                 use_bwrap: bool | None = None, hash_seeds: tuple[int, int] = (0, 1),
                 max_jobs_per_zygote: int = 1000, admit_timeout_s: float = 60.0):
        self.limits = limits or Limits()
        self.workers = workers or 2 * (os.cpu_count() or 1)  # jobs are latency-bound: 2 per core
        self.max_queue, self.admit_timeout_s, self.hash_seeds = max_queue, admit_timeout_s, tuple(hash_seeds)
        self.layers = detect_layers(use_bwrap, self.limits.tmp_bytes)
        self.sandbox = self.layers.as_dict()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0  # admitted, not finished
        self._running = 0
        self._done = 0
        self._closed = False
        self._threads = [threading.Thread(target=self._loop, name=f"tracer-worker-{i}", daemon=True)
                         for i in range(self.workers)]
        self._workers = [Worker(self.layers, self.limits, max_jobs_per_zygote) for _ in range(self.workers)]
        for t, w in zip(self._threads, self._workers):
            t._tracer_worker = w  # type: ignore[attr-defined]
            t.start()

    def __enter__(self) -> "TracerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- public API ----------------------------------------------------------------------------
    def run_tests(self, requests: Iterable[dict], *, admit_timeout_s: float | None = None) -> list[dict]:
        """Judge each request's program against its tests. Results in request order. A batch larger
        than the queue runs in chunks of at most the queue's capacity, one after another."""
        return self._batch("run_tests", list(requests), admit_timeout_s)

    def trace(self, requests: Iterable[dict], *, admit_timeout_s: float | None = None) -> list[dict]:
        """Trace each request's program on its stdin. Results in request order (chunked as run_tests)."""
        return self._batch("trace", list(requests), admit_timeout_s)

    def health(self) -> dict:
        with self._cond:
            return {"status": "ok" if not self._closed else "closed", "workers": self.workers,
                    "queue_depth": self._pending - self._running, "in_flight": self._running,
                    "capacity": self.max_queue, "done": self._done, "sandbox": self.sandbox}

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()

    # -- internals -----------------------------------------------------------------------------
    def submit(self, kind: str, requests: list[dict], admit_timeout_s: float | None = None) -> list[Future]:
        _check_requests(kind, requests)
        n = len(requests)
        if n > self.max_queue:
            raise QueueFull(f"batch of {n} exceeds the queue capacity {self.max_queue}; split it")
        wait = self.admit_timeout_s if admit_timeout_s is None else admit_timeout_s
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is closed")
            if not self._cond.wait_for(lambda: self._pending + n <= self.max_queue, timeout=wait):
                raise QueueFull(f"queue full ({self._pending} pending, capacity {self.max_queue})")
            self._pending += n
        futures = []
        for i, req in enumerate(requests):
            f: Future = Future()
            self._queue.put((kind, str(req.get("id", i)), req, f))
            futures.append(f)
        return futures

    def _batch(self, kind: str, requests: list[dict], admit_timeout_s: float | None) -> list[dict]:
        _check_requests(kind, requests)  # all of them before any chunk runs: a bad request runs nothing
        out: list[dict] = []
        for start in range(0, len(requests), self.max_queue):
            out += [f.result() for f in self.submit(kind, requests[start:start + self.max_queue], admit_timeout_s)]
        return out

    def _loop(self) -> None:
        worker: Worker = threading.current_thread()._tracer_worker  # type: ignore[attr-defined]
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                kind, rid, req, fut = item
                with self._cond:
                    self._running += 1
                try:
                    if kind == "run_tests":
                        body = worker.run_tests(req, self.hash_seeds[0])
                    else:
                        body = worker.trace(req, self.hash_seeds)
                except Exception as e:  # noqa: BLE001 - never lose a request
                    body = {"status": "sandbox_error", "error": f"{type(e).__name__}: {e}"}
                    if kind == "run_tests":
                        body.update(passed=False, tests=[])
                result = {"id": rid, **body, "sandbox": self.sandbox}
                with self._cond:
                    self._running -= 1
                    self._pending -= 1
                    self._done += 1
                    self._cond.notify_all()
                fut.set_result(result)
        finally:
            worker.close()
