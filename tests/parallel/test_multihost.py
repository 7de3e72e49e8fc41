"""Multi-host correctness on CPU: the sharded train step run by 2 processes (jax.distributed on
localhost, 2 CPU devices each, each process feeding only its own rows) equals the same step run by
one process owning 4 devices. The processes are started with subprocess (never forked from a
process that has initialised JAX)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("multihost_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(process_id, num_processes, local_devices, out, port):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen([sys.executable, str(WORKER), "--process-id", str(process_id), "--num-processes",
                             str(num_processes), "--port", str(port), "--local-devices", str(local_devices),
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(procs, timeout=240):
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-4000:]


def test_two_processes_match_one(tmp_path):
    port = _free_port()
    multi = [_start(i, 2, 2, tmp_path / f"multi{i}.json", port) for i in range(2)]
    single = _start(0, 1, 4, tmp_path / "single.json", 0)
    _wait(multi + [single])
    ref = json.loads((tmp_path / "single.json").read_text())
    assert ref["devices"] == 4 and ref["processes"] == 1 and ref["step"] == 2
    for i in range(2):
        got = json.loads((tmp_path / f"multi{i}.json").read_text())
        assert got["process"] == i and got["processes"] == 2 and got["devices"] == 4 and got["step"] == 2
        for m_got, m_ref in zip(got["metrics"], ref["metrics"], strict=True):
            for key in ("loss", "pg_loss", "kl_loss", "grad_norm", "clipfrac", "num_tokens", "skipped"):
                np.testing.assert_allclose(m_got[key], m_ref[key], rtol=1e-5, atol=1e-6, err_msg=f"{key} (process {i})")
        assert got["param_sums"].keys() == ref["param_sums"].keys()
        for name, sums in ref["param_sums"].items():
            np.testing.assert_allclose(got["param_sums"][name], sums, rtol=1e-5, atol=1e-5, err_msg=name)
    assert ref["metrics"][1]["loss"] != ref["metrics"][0]["loss"]  # the first step changed the parameters
