"""Reporting the sandbox's layers and checking its isolation: why bubblewrap is off
(`Layers.problem`, `bwrap_problem`), `missing_isolation`, the service's layers over HTTP
(`TracerClient.layers`), and `python -m tracer selftest`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tracer.sandbox as sandbox
from tracer.client import ServiceError, TracerClient
from tracer.pool import TracerPool
from tracer.sandbox import describe_layers, detect_layers, missing_isolation
from tracer.selftest import selftest
from tracer.service import serve_in_thread

BWRAP_WORKS = detect_layers().bwrap


def test_layers_say_why_bubblewrap_is_off(monkeypatch):
    off = detect_layers(False)
    assert not off.bwrap and "disabled" in off.problem
    assert off.as_dict()["bwrap_problem"] == off.problem and missing_isolation(off.as_dict()) == ["network_isolated"]
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    gone = detect_layers.__wrapped__(None)  # not the cached probe
    assert not gone.bwrap and "/nonexistent/bwrap not found" in gone.problem
    assert "apt-get install -y bubblewrap" in gone.problem
    monkeypatch.setattr(sandbox, "BWRAP", "/bin/false")  # installed, but cannot start a sandbox
    broken = detect_layers.__wrapped__(None)
    assert not broken.bwrap and "cannot start a sandbox" in broken.problem and "user namespaces" in broken.problem
    line = describe_layers(gone.as_dict())
    assert "\n" not in line and "off: bwrap, network_isolated" in line and "not found" in line


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work here")
def test_bubblewrap_layers_report_no_problem():
    on = detect_layers().as_dict()
    assert on["network_isolated"] and "bwrap_problem" not in on and missing_isolation(on) == []
    assert describe_layers(on).startswith("sandbox layers: bwrap, network_isolated")


def test_service_reports_its_layers():
    with TracerPool(workers=1, use_bwrap=False) as pool:
        server, url = serve_in_thread(pool)
        try:
            layers = TracerClient(url).layers(timeout_s=10)
        finally:
            server.shutdown()
            server.server_close()
    assert layers == pool.sandbox and not layers["network_isolated"] and "disabled" in layers["bwrap_problem"]
    with pytest.raises(ServiceError, match="healthz"):
        TracerClient("http://127.0.0.1:9").layers(timeout_s=2)  # nothing listens on port 9


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work here")
def test_selftest_passes_with_bubblewrap(pool):
    report = selftest(pool=pool)
    assert report["ok"] and report["checks"] == {"run_tests": True, "network_blocked": True}, report
    assert report["missing"] == [] and report["message"] == "tracer selftest: ok, network isolated"


def test_selftest_without_bubblewrap_fails_unless_allowed():
    with TracerPool(workers=1, use_bwrap=False) as pool:
        strict = selftest(pool=pool)
        lax = selftest(pool=pool, require_isolation=False)
    assert not strict["ok"] and strict["missing"] == ["network_isolated"]
    assert strict["checks"] == {"run_tests": True, "network_blocked": False}  # the probe reached 127.0.0.1
    assert strict["message"].startswith("tracer selftest: FAILED: no network isolation")
    assert lax["ok"] and "without network isolation" in lax["message"]


def test_selftest_cli_names_the_missing_layer_and_the_fix():
    env = {**os.environ, "TRACER_BWRAP": "/nonexistent/bwrap"}
    proc = subprocess.run([sys.executable, "-m", "tracer", "selftest"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "FAILED" in first and "/nonexistent/bwrap not found" in first and "apt-get install -y bubblewrap" in first
    proc = subprocess.run([sys.executable, "-m", "tracer", "selftest", "--allow-no-isolation", "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["missing"] == ["network_isolated"] and not report["sandbox"]["bwrap"]
