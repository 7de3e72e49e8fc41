"""SIGTERM (a maintenance event or a preemption notice): `coderl train` checkpoints the last completed
step and exits with status 75 within `preemption_timeout_s`; a restart resumes and matches an
uninterrupted run. Where the stop cannot finish in time (here: storage that never answers), the
watchdog ends the process with status 76 at the bound."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderl_jax.train.preemption import EXIT_PREEMPTED, EXIT_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
TIMING = ("time/", "perf/")
STEPS = 4
OVERRIDES = [f"steps={STEPS}", "checkpoint_every=100", "eval.every=0", "progress=false", "tensorboard=false",
             "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=16",
             "rollout.prompt_buckets=192", "tracer.workers=1", "loss.entropy_coef=0.01",
             "optim.learning_rate=3e-3", "seed=4"]


def _env(tmp: Path, compile_cache: Path, data_dir: str) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "CODERL_CACHE": str(tmp / "cache"),
            "CODERL_DATA_DIR": str(tmp / data_dir), "CODERL_COMPILE_CACHE": str(compile_cache)}


def _train(tmp: Path, out: Path, *extra, compile_cache: Path, data_dir: str = "tfds",
           stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "coderl_jax.cli", "train", "--config", "tiny_cpu", f"out_dir={out}",
                             *OVERRIDES, *extra], env=_env(tmp, compile_cache, data_dir), cwd=tmp, stdout=stdout,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def _steps_on_disk(out: Path) -> list[int]:
    return sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_sigterm_checkpoints_the_last_step_exits_75_and_resumes(tmp_path, compile_cache):
    # the uninterrupted run is independent of the stopped one: it runs alongside it (with a dataset
    # directory of its own: two builds into one directory would collide) and is checked after it
    whole = tmp_path / "whole"
    with open(tmp_path / "whole.log", "w") as log:  # a file: nobody reads a pipe while the other runs
        whole_proc = _train(tmp_path, whole, compile_cache=compile_cache, data_dir="tfds_whole", stdout=log)
    try:
        stopped = tmp_path / "stopped"
        bound = 60
        proc = _train(tmp_path, stopped, f"preemption_timeout_s={bound}", compile_cache=compile_cache)
        deadline = time.time() + 900
        while not ((stopped / "metrics.jsonl").exists() and (stopped / "metrics.jsonl").read_text().strip()):
            if proc.poll() is not None:
                pytest.fail("the run ended before SIGTERM:\n" + proc.stdout.read()[-5000:])
            assert time.time() < deadline, "no step finished in 900 s"
            time.sleep(0.1)
        t0 = time.monotonic()
        # to the whole process group, as tpu_scripts/launch.sh stops a run and as a shutdown does; step 1
        # is done (not checkpointed: checkpoint_every=100)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=bound + 60)
        took = time.monotonic() - t0
        assert proc.returncode == EXIT_PREEMPTED, out[-5000:]
        assert took < bound, f"exited {took:.0f} s after SIGTERM"
        last = _metrics(stopped)[-1]["step"]
        assert 1 <= last < STEPS, out[-5000:]  # it stopped early, after a completed step
        assert _steps_on_disk(stopped) == [last]  # that step's checkpoint, written on the way out
        assert f"stopped on SIGTERM after step {last}" in out
        whole_proc.wait(timeout=900)
    finally:
        if whole_proc.poll() is None:
            whole_proc.kill()
            whole_proc.wait()
    assert whole_proc.returncode == 0, (tmp_path / "whole.log").read_text()[-5000:]
    reference = _metrics(whole)
    assert [r["step"] for r in reference] == list(range(1, STEPS + 1))

    proc = _train(tmp_path, stopped, compile_cache=compile_cache)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-5000:]
    assert f"resumed from step {last}" in out
    resumed = _metrics(stopped)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for a, b in zip(reference, resumed):
        assert a == b, f"step {a['step']} differs after the SIGTERM stop and resume"


STUCK = """
import sys, time
from coderl_jax.train.preemption import StopSignal
StopSignal.install(float(sys.argv[1]))
from coderl_jax.train.storage import checkpoint_path
path = checkpoint_path("gs://bucket/run")
print("ready", flush=True)
(path / "model_config.json").write_text("{}")  # the server never answers: gcsfs waits and retries
print("write returned", flush=True)
"""


def test_sigterm_while_storage_hangs_exits_76_at_the_bound(tmp_path):
    """A storage call that never returns (a GCS endpoint that accepts and stays silent) cannot stop
    the exit: the watchdog ends the process `preemption_timeout_s` after SIGTERM."""
    pytest.importorskip("gcsfs")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        env = {**os.environ, "STORAGE_EMULATOR_HOST": url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
        proc = subprocess.Popen([sys.executable, "-c", STUCK, "3"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # inside the write: connected, waiting for an answer
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        took = time.monotonic() - t0
    assert proc.returncode == EXIT_TIMEOUT, out
    assert 2.5 < took < 10, took
    assert "no clean stop within 3 s of SIGTERM" in out and "write returned" not in out
