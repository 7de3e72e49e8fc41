"""The HTTP service (started as a subprocess on a free port), the client, and the CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tracer.client import ServiceError, TracerClient
from tracer.pool import RequestError
from tracer_helpers import call, stdio


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tracer", "serve", "--host", "127.0.0.1", "--port", str(port),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if json.loads(r.read())["status"] == "ok":
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"service did not start: {proc.stderr.read()}")


@pytest.fixture(scope="module")
def service():
    proc, url = _start("--workers", "2")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _post(url: str, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_healthz(service):
    h = TracerClient(service).health()
    assert h["status"] == "ok" and h["workers"] == 2 and h["queue_depth"] == 0 and "sandbox" in h


def test_run_tests_and_trace_over_http(service):
    body = {"requests": [{"id": "a", **call("def f(x):\n    return x + 1\n", "f", [[1]], [2])},
                         {"id": "b", **stdio("print(input())\n", ["hi\n"], ["bye"])}]}
    code, out = _post(service, "/v1/run_tests", json.dumps(body).encode())
    assert code == 200
    assert [(r["id"], r["status"], r["passed"]) for r in out["results"]] == [("a", "passed", True),
                                                                              ("b", "failed", False)]
    code, out = _post(service, "/v1/trace", json.dumps({"requests": [
        {"id": "t", "program": "def main():\n    n = int(input())\n    print(n * 2)\nmain()\n", "stdin": "21\n"}]}).encode())
    assert code == 200
    r = out["results"][0]
    assert (r["id"], r["status"], r["stdout"]) == ("t", "ok", "42\n")
    assert r["variables"]["main.n"]["repr"] == "21"


def test_bad_requests_get_400_and_the_service_stays_up(service):
    assert _post(service, "/v1/run_tests", b"{not json")[0] == 400
    assert _post(service, "/v1/run_tests", b'{"requests": [{"program": 1}]}')[0] == 400
    code, out = _post(service, "/v1/trace", b'{"requests": [{"stdin": ""}]}')
    assert code == 400 and "program" in out["error"]
    assert _post(service, "/v1/nope", b"{}")[0] == 404
    with pytest.raises(RequestError):
        TracerClient(service).run_tests([{"program": "x", "tests": {"style": "??"}}])
    assert TracerClient(service).health()["status"] == "ok"


def test_hostile_jobs_over_http_and_service_survives(service):
    client = TracerClient(service, batch_size=3)
    reqs = [
        stdio("while True:\n    pass\n", [""], [""], timeout_s=1),
        stdio("while True:\n    print('x' * 10000)\n", [""], [""]),
        stdio("x = bytearray(8 << 30)\n", [""], [""]),
        call("import os\ndef f():\n    os.killpg(os.getpgrp(), 9)\n", "f", [[]], [1]),
        call("import os\ndef f():\n    os.kill(os.getppid(), 9)\n    return 2\n", "f", [[]], [1]),
        stdio("import sys, json\nsys.setrecursionlimit(10 ** 8)\njson.loads('[' * 10 ** 6 + ']' * 10 ** 6)\n",
              [""], [""], timeout_s=5),
        stdio("print('{\"passed\": true}')\n", [""], ["2"]),
        call("# " + "x" * (10 << 20) + "\ndef f():\n    return 1\n", "f", [[]], [1], timeout_s=20),
    ]
    res = client.run_tests(reqs)
    assert [r["status"] for r in res] == ["timeout", "output_limit", "memory_limit", "exited_early", "failed",
                                          "crashed", "failed", "passed"]
    assert [r["id"] for r in res] == [str(i) for i in range(len(reqs))]
    assert client.health()["status"] == "ok"


def test_backpressure_503_and_client_retries():
    proc, url = _start("--workers", "1", "--max-queue", "2")
    try:
        code, out = _post(url, "/v1/run_tests", json.dumps({"requests": [
            call("def f():\n    return 1\n", "f", [[]], [1])] * 3}).encode())
        assert code == 503 and "exceeds" in out["error"]
        with pytest.raises(ServiceError):
            TracerClient(url, retries=1, backoff_s=0.05, batch_size=3).run_tests(
                [call("def f():\n    return 1\n", "f", [[]], [1])] * 3)
        # batches of 2 fit: the client splits and gets everything, in order
        res = TracerClient(url, batch_size=2, concurrency=2, backoff_s=0.1).run_tests(
            [{"id": f"q{i}", **call("def f(x):\n    return x\n", "f", [[i]], [i])} for i in range(7)])
        assert [r["id"] for r in res] == [f"q{i}" for i in range(7)] and all(r["passed"] for r in res)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_json_matches_service_result(service, tmp_path):
    prog = "x = [3, 1, 2]\nx.sort()\nprint(x)\n"
    (tmp_path / "p.py").write_text(prog)
    out = subprocess.run([sys.executable, "-m", "tracer", "trace", "--code", str(tmp_path / "p.py"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    http = TracerClient(service).trace([{"id": "0", "program": prog}])[0]
    for r in (cli, http):
        r.pop("time_s")
    assert cli == http
    human = subprocess.run([sys.executable, "-m", "tracer", "trace", "--code", str(tmp_path / "p.py")],
                           capture_output=True, text=True, timeout=120)
    assert human.returncode == 0 and "x = [1, 2, 3]" in human.stdout


def test_client_in_process_server_parity():
    from tracer.pool import TracerPool
    from tracer.service import serve_in_thread

    with TracerPool(workers=1) as pool:
        server, url = serve_in_thread(pool)
        try:
            reqs = [call("def f(x):\n    return x * 3\n", "f", [[2]], [6]), stdio("print(5)\n", [""], ["5"])]
            a = pool.run_tests(reqs)
            b = TracerClient(url).run_tests(reqs)
            assert [(r["id"], r["status"]) for r in a] == [(r["id"], r["status"]) for r in b]
        finally:
            server.shutdown()
            server.server_close()
