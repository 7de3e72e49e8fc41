"""Command line: ``python -m tracer {serve, run-tests, trace, selftest}``.

  serve      --host H --port P --workers N          run the HTTP service
  run-tests  --code FILE --tests FILE [--json]      judge a program (tests FILE holds a tests object)
  trace      --code FILE [--stdin FILE] [--json]    trace a program's variables
  selftest   [--allow-no-isolation] [--json]        run two jobs; check the sandbox works and isolates
                                                    the network (the layers and what is missing)
With --json, the result printed is exactly the service's result object for one request (selftest:
its report). Exit status: 0 when the tests pass / the trace is ok / the self-test passes, 1
otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tracer", description="sandboxed test runner and variable tracer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the HTTP JSON service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--max-queue", type=int, default=10_000)
    r = sub.add_parser("run-tests", help="run one program against a tests object (JSON file)")
    r.add_argument("--code", required=True)
    r.add_argument("--tests", required=True)
    r.add_argument("--timeout", type=float, default=None, help="seconds per test case")
    r.add_argument("--json", action="store_true")
    t = sub.add_parser("trace", help="trace one program")
    t.add_argument("--code", required=True)
    t.add_argument("--stdin", default=None)
    t.add_argument("--timeout", type=float, default=None)
    t.add_argument("--per-line", action="store_true")
    t.add_argument("--check-determinism", action="store_true")
    t.add_argument("--json", action="store_true")
    st = sub.add_parser("selftest", help="check that the sandbox works here and isolates the network")
    st.add_argument("--allow-no-isolation", action="store_true",
                    help="pass without network isolation (bubblewrap missing); the report still says so")
    st.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    sys.set_int_max_str_digits(0)

    if a.cmd == "selftest":
        from tracer.selftest import selftest

        report = selftest(require_isolation=not a.allow_no_isolation)
        print(json.dumps(report) if a.json else f"{report['message']}\n{report['summary']}")
        return 0 if report["ok"] else 1

    if a.cmd == "serve":
        from tracer.service import serve

        serve(a.host, a.port, a.workers, max_queue=a.max_queue)
        return 0

    from tracer.pool import RequestError, TracerPool

    with TracerPool(workers=1) as pool:
        try:
            if a.cmd == "run-tests":
                req = {"id": "0", "program": _read(a.code), "tests": json.loads(_read(a.tests))}
                if a.timeout:
                    req["timeout_s"] = a.timeout
                res = pool.run_tests([req])[0]
                ok = res["passed"]
            else:
                req = {"id": "0", "program": _read(a.code), "stdin": _read(a.stdin) if a.stdin else "",
                       "per_line": a.per_line, "check_determinism": a.check_determinism}
                if a.timeout:
                    req["timeout_s"] = a.timeout
                res = pool.trace([req])[0]
                ok = res["status"] == "ok"
        except (RequestError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if a.json:
        print(json.dumps(res))
    elif a.cmd == "run-tests":
        print(f"{res['status']}  ({sum(t['status'] == 'passed' for t in res['tests'])}/{len(res['tests'])} "
              f"tests passed, {res['time_s']:.3f}s)")
        for tc in res["tests"]:
            if tc["status"] != "passed":
                extra = tc.get("error") or tc.get("got") or tc.get("stdout") or ""
                print(f"  test {tc['index']}: {tc['status']} {extra}".rstrip())
    else:
        print(f"status: {res['status']}")
        if res.get("exception"):
            print(f"exception: {res['exception']}")
        print("stdout:", json.dumps(res["stdout"]))
        for name, v in res.get("variables", {}).items():
            print(f"  {name} = {v['repr']}")
        if res.get("nondeterministic"):
            print("nondeterministic: stdout or variables differ between hash seeds")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
