"""Checkpoints on gs://, end to end, against a local GCS emulator (gcp-storage-emulator, in memory on
127.0.0.1; nothing leaves the machine).

`coderl train --config tiny_cpu checkpoint_dir=gs://bucket/...` runs as 2 processes (jax.distributed
on localhost, each with its own local out_dir, as hosts of a pod) and as 1 process; each is killed
with SIGKILL once a checkpoint is in the bucket, started again, and must produce the metrics of an
uninterrupted run exactly (timings aside). The 2-process job is also stopped once on the way by a
SIGTERM to process 1 alone: both processes stop after the same step, checkpoint it and exit 75.

The clients reach the emulator through environment variables only: STORAGE_EMULATOR_HOST (gcsfs,
google-cloud-storage), TENSORSTORE_GCS_HTTP_URL and GOOGLE_AUTH_TOKEN_FOR_TESTING (tensorstore,
which orbax writes the arrays through). The emulator does not implement GCS's object move (gcsfs's
rename answers 501 and is retried): a run that renamed objects on gs:// would stall here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from coderl_jax.train.preemption import EXIT_PREEMPTED

pytest.importorskip("gcsfs")
pytest.importorskip("gcp_storage_emulator")

REPO = Path(__file__).resolve().parents[2]
TIMING = ("time/", "perf/")
STEPS = 4
# the tiny random policy on the toy problems; an entropy bonus makes every update change the
# parameters (a random policy earns no reward), so a restore that lost anything shows in the metrics
OVERRIDES = [f"steps={STEPS}", "checkpoint_every=1", "keep_checkpoints=2", "eval.every=0", "progress=false",
             "tensorboard=false", "rollout.prompts_per_step=2", "rollout.group_size=4",
             "rollout.max_new_tokens=16", "rollout.prompt_buckets=192", "tracer.workers=1",
             "loss.entropy_coef=0.01", "optim.learning_rate=3e-3", "seed=2"]


def _free_port(taken: tuple[int, ...] = ()) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:  # a port handed to a job whose coordinator may not have bound it yet
            return port


def objects(url: str, prefix: str) -> list[str]:
    """Object names under `prefix` in the emulator's bucket."""
    names, token = [], ""
    while True:
        query = urllib.parse.urlencode({"prefix": prefix, **({"pageToken": token} if token else {})})
        listing = json.loads(urllib.request.urlopen(f"{url}/storage/v1/b/bucket/o?{query}", timeout=10).read())
        names += [o["name"] for o in listing.get("items", [])]
        token = listing.get("nextPageToken", "")
        if not token:
            return names


def committed_steps(url: str, run: str) -> set[int]:
    """Steps whose checkpoint is complete (orbax's commit file on an object store)."""
    return {int(n.split("/")[1]) for n in objects(url, f"{run}/")
            if n.count("/") == 2 and n.endswith("/commit_success.txt") and n.split("/")[1].isdigit()}


def start(tmp: Path, name: str, env_extra: dict, *, processes: int, port: int = 0,
          compile_cache: Path) -> list[subprocess.Popen]:
    """`coderl train` as `processes` processes, each with its own local out_dir, checkpointing to
    gs://bucket/<name>."""
    procs = []
    for i in range(processes):
        out = tmp / name / f"host{i}"
        env = {**os.environ, **env_extra, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
               # per host and per run: two runs side by side must not build one dataset together
               "CODERL_CACHE": str(tmp / "cache"), "CODERL_DATA_DIR": str(tmp / name / f"data{i}"),
               "CODERL_COMPILE_CACHE": str(compile_cache)}  # one compile cache for all of the runs
        for key in ("JAX_COORDINATOR_ADDRESS", "CODERL_NUM_PROCESSES", "CODERL_PROCESS_ID", "CODERL_DISTRIBUTED"):
            env.pop(key, None)
        if processes > 1:
            env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", CODERL_NUM_PROCESSES=str(processes),
                       CODERL_PROCESS_ID=str(i))
        (tmp / name).mkdir(parents=True, exist_ok=True)
        log = open(tmp / name / f"host{i}.log", "a")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "coderl_jax.cli", "train", "--config", "tiny_cpu", f"out_dir={out}",
             f"checkpoint_dir=gs://bucket/{name}", *OVERRIDES], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def log_tail(tmp: Path, name: str) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text()[-4000:] for p in sorted((tmp / name).glob("host*.log")))


def wait_all(procs, tmp, name, timeout=600) -> None:
    deadline = time.time() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: did not finish in {timeout} s\n" + log_tail(tmp, name))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs), log_tail(tmp, name)


def metrics(tmp: Path, name: str) -> list[dict]:
    rows = [json.loads(line) for line in (tmp / name / "host0" / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


def kill_after_checkpoint(procs, tmp, name, url, step: int) -> None:
    """SIGKILL every process once `step`'s checkpoint is committed in the bucket."""
    deadline = time.time() + 600
    while step not in committed_steps(url, name):
        if any(p.poll() is not None for p in procs):
            pytest.fail(f"{name}: ended before it could be killed\n" + log_tail(tmp, name))
        if time.time() > deadline:
            pytest.fail(f"{name}: no checkpoint {step} in the bucket after 600 s\n" + log_tail(tmp, name))
        time.sleep(0.2)
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        p.wait()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """The directory of the module's runs, with their shared cache (the tiny random policy: built
    here once, before several processes of one job would each build it)."""
    tmp = tmp_path_factory.mktemp("gcs_runs")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CODERL_CACHE": str(tmp / "cache")}
    subprocess.run([sys.executable, "-c", "from coderl_jax.models.tiny import default_model_dir; default_model_dir()"],
                   env=env, cwd=REPO, check=True, capture_output=True, timeout=300)
    return tmp


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 1], ids=["2_processes", "1_process"])
def test_killed_run_resumes_from_gcs_like_an_uninterrupted_one(emulator, runs_dir, compile_cache, processes):
    url, env, emulator_log = emulator
    tmp = runs_dir
    whole, killed = f"whole{processes}", f"killed{processes}"

    # the uninterrupted run is independent of the interrupted one: it runs alongside it (a process
    # of a resumed job mostly waits for the other one's compiles), and is checked once both are done
    def launch(name: str, port: int) -> list[subprocess.Popen]:
        return start(tmp, name, env, processes=processes, port=port, compile_cache=compile_cache)

    whole_port = _free_port()
    whole_procs = launch(whole, whole_port)
    try:
        procs = launch(killed, _free_port((whole_port,)))
        kill_after_checkpoint(procs, tmp, killed, url, step=processes % 2 + 1)  # 2 processes: step 1, 1: step 2
        assert len(metrics(tmp, killed)) < STEPS  # it really was interrupted
        log = tmp / killed / "host0.log"

        if processes == 2:
            # resumed, then stopped by a preemption notice that only process 1 receives: both processes
            # stop after the same step, with its checkpoint in the bucket, and exit with status 75
            procs = launch(killed, _free_port((whole_port,)))
            deadline = time.time() + 600
            while len(metrics(tmp, killed)) < 2:
                assert all(p.poll() is None for p in procs), log_tail(tmp, killed)
                assert time.time() < deadline, log_tail(tmp, killed)
                time.sleep(0.1)
            procs[1].send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            for p in procs:
                p.wait(timeout=120)
            assert [p.returncode for p in procs] == [EXIT_PREEMPTED] * 2, log_tail(tmp, killed)
            assert time.monotonic() - t0 < 60  # preemption_timeout_s
            last = metrics(tmp, killed)[-1]["step"]
            assert last in (2, 3) and last in committed_steps(url, killed)
            assert f"stopped on SIGTERM after step {last}" in log.read_text()
            assert "resumed from step 1" in log.read_text()

        wait_all(launch(killed, _free_port((whole_port,))), tmp, killed)
        wait_all(whole_procs, tmp, whole)
    finally:
        for p in whole_procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    reference = metrics(tmp, whole)
    assert [r["step"] for r in reference] == list(range(1, STEPS + 1))
    assert all(r["actor/grad_norm"] > 0 for r in reference)  # every update changes the parameters
    assert committed_steps(url, whole) == {STEPS - 1, STEPS}  # keep_checkpoints=2: older steps deleted
    names = objects(url, f"{whole}/")
    assert f"{whole}/model_config.json" in names and f"{whole}/tokenizer.json" in names
    assert not any(".coderl-shared-check-" in n for n in names)  # the start-up check cleans up
    # nothing of the run on local disk but process 0's metrics and each host's own files
    assert not (tmp / whole / "host0" / "checkpoints").exists() and not (tmp / whole / "host1" / "checkpoints").exists()

    assert f"resumed from step {last if processes == 2 else 2}" in log.read_text()
    resumed = metrics(tmp, killed)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for a, b in zip(reference, resumed):
        assert a == b, f"step {a['step']} differs after resume from gs://"
    # no save renamed an object (GCS has no rename; the emulator answers gcsfs's moveTo with 501)
    assert "moveTo" not in emulator_log.read_text()
