"""`tracer.require_isolation`: a run that requires a network-isolated sandbox stops at start-up, in
one line naming the missing layer and the fix, when bubblewrap is missing on this host or on the
remote tracer service; the explicit opt-out starts and warns; "auto" requires it only when the job
has several processes. Bubblewrap is hidden by pointing the pool's probe at a path that does not
exist (what a host without the package reports)."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import tracer.pool
import tracer.sandbox
from coderl_jax.errors import UserError
from coderl_jax.parallel.hosts import HostShardedTracer
from coderl_jax.train import loop
from coderl_jax.train.config import TracerConfig, TrainConfig
from coderl_jax.train.config_util import apply_overrides, load_config, preset_names
from coderl_jax.train.isolation import IsolationError, isolation_required
from tracer.client import TracerClient
from tracer.pool import TracerPool
from tracer.service import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
BWRAP_WORKS = tracer.sandbox.detect_layers().bwrap


def _cfg(**tracer_fields) -> TrainConfig:
    return TrainConfig(model="tiny-random", tracer=TracerConfig(workers=1, **tracer_fields))


@pytest.fixture
def no_bwrap(monkeypatch):
    """This host as one without bubblewrap: the pool's layer probe finds no binary."""
    monkeypatch.setattr(tracer.sandbox, "BWRAP", "/nonexistent/bwrap")
    layers = tracer.sandbox.detect_layers.__wrapped__(None)  # the real probe, not its cached answer
    monkeypatch.setattr(tracer.pool, "detect_layers", lambda use_bwrap=None, tmp_bytes=0: layers)
    return layers


@pytest.fixture
def service():
    """Start a tracer service over a given pool; yields its URL; stops it afterwards."""
    running = []

    def start(pool):
        server, url = serve_in_thread(pool)
        running.append((server, pool))
        return url

    yield start
    for server, pool in running:
        server.shutdown()
        server.server_close()
        pool.close()


def test_required_without_bubblewrap_refuses_in_one_line(no_bwrap):
    with pytest.raises(IsolationError) as info:
        loop.make_tracer(_cfg(require_isolation=True))
    msg = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in msg  # `coderl` prints it as one line
    assert "no network isolation (network_isolated" in msg and "/nonexistent/bwrap not found" in msg
    assert "apt-get install -y bubblewrap" in msg and "tracer.require_isolation=false" in msg


def test_opt_out_starts_and_warns(no_bwrap, caplog):
    caplog.set_level(logging.INFO, logger="coderl_jax.train")
    pool = loop.make_tracer(_cfg(require_isolation=False))
    try:
        assert isinstance(pool, TracerPool) and not pool.sandbox["network_isolated"]
        r = pool.run_tests([{"program": "print(1)", "tests": {"style": "stdio", "inputs": [""], "outputs": ["1"]}}])
        assert r[0]["status"] == "passed"
    finally:
        pool.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tracer.require_isolation=false" in warnings[0]
    assert "off: bwrap, network_isolated" in warnings[0]


def test_auto_requires_isolation_only_with_several_processes(no_bwrap, caplog, monkeypatch):
    assert isolation_required(None, 1) is False and isolation_required(None, 8) is True
    assert isolation_required(True, 1) is True and isolation_required(False, 8) is False
    caplog.set_level(logging.INFO, logger="coderl_jax.train")
    pool = loop.make_tracer(_cfg())  # one process, no bubblewrap: a laptop keeps working
    pool.close()
    lines = [r.getMessage() for r in caplog.records if "sandbox layers" in r.getMessage()]
    assert len(lines) == 1 and "apt-get install -y bubblewrap" in lines[0]
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(IsolationError, match="a job of 2 processes"):
        loop.make_tracer(_cfg())


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work here")
def test_required_with_bubblewrap_starts(caplog):
    caplog.set_level(logging.INFO, logger="coderl_jax.train")
    pool = loop.make_tracer(_cfg(require_isolation=True))
    pool.close()
    lines = [r.getMessage() for r in caplog.records if "sandbox layers" in r.getMessage()]
    assert len(lines) == 1 and "network_isolated" in lines[0] and "off:" not in lines[0]


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work here")
def test_several_processes_with_bubblewrap_start(monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 2)  # auto: required, and there
    tracer = loop.make_tracer(_cfg())
    try:
        assert isinstance(tracer, HostShardedTracer) and tracer.tracer.sandbox["network_isolated"]
    finally:
        tracer.tracer.close()


def test_remote_service_without_isolation_is_refused(service, caplog):
    url = service(TracerPool(workers=1, use_bwrap=False))
    with pytest.raises(IsolationError) as info:
        loop.make_tracer(_cfg(url=url, require_isolation=True))
    msg = str(info.value)
    assert f"tracer.url={url}" in msg and "no network isolation (network_isolated" in msg and "apt-get install -y bubblewrap" in msg
    caplog.set_level(logging.INFO, logger="coderl_jax.train")
    client = loop.make_tracer(_cfg(url=url, require_isolation=False))
    assert isinstance(client, TracerClient)
    assert any(r.levelno == logging.WARNING and "require_isolation=false" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not BWRAP_WORKS, reason="bubblewrap does not work here")
def test_remote_service_with_isolation_is_accepted(service):
    url = service(TracerPool(workers=1))
    client = loop.make_tracer(_cfg(url=url, require_isolation=True))  # the service's layers are what count
    assert isinstance(client, TracerClient)


def test_unreachable_service(caplog):
    url = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(IsolationError, match="cannot read the sandbox layers"):
        loop.make_tracer(_cfg(url=url, require_isolation=True))
    caplog.set_level(logging.INFO, logger="coderl_jax.train")
    assert isinstance(loop.make_tracer(_cfg(url=url)), TracerClient)  # not required: starts, warns
    assert any("sandbox layers unknown" in r.getMessage() for r in caplog.records)


def test_the_setting_is_in_the_config_and_the_presets():
    assert TrainConfig().tracer.require_isolation is None  # auto
    cfg = apply_overrides(TrainConfig(), ["tracer.require_isolation=false"])
    assert dataclasses.asdict(cfg)["tracer"]["require_isolation"] is False  # what config.json records
    assert apply_overrides(cfg, ["tracer.require_isolation=none"]).tracer.require_isolation is None
    from coderl_jax.configs.pods import PODS

    names = preset_names()
    assert set(PODS) <= set(names)
    for name in names:  # every pod and GPU preset requires isolation; the CPU ones are auto
        want = None if name.endswith("_cpu") else True
        assert load_config(name).tracer.require_isolation is want, name


def test_coderl_train_stops_at_start_up_in_one_line(tmp_path):
    env = {**os.environ, "TRACER_BWRAP": "/nonexistent/bwrap", "JAX_PLATFORMS": "cpu",
           "CODERL_DATA_DIR": str(tmp_path / "data")}
    env.pop("CODERL_TRACEBACK", None)
    proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "train", "--config", "tiny_cpu",
                           f"out_dir={tmp_path / 'run'}", "tracer.require_isolation=true", "progress=false"],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("coderl train: ") and "apt-get install -y bubblewrap" in last, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step ran
