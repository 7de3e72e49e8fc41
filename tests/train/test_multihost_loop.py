"""The training loop on several hosts, on CPU: `coderl train` run by 2 processes (jax.distributed
on localhost, gloo collectives, one CPU device each, a 2-device mesh) equals the same run by one
process owning 2 devices, step for step.

In the 2-process run each process reads its own grain shard of the problems, runs its block of
every batch of sandbox work (unit-test rewards, the alignment harvest) on its own
tracer pool, and the results are gathered; the checkpoint holds each process's data position.
The policy is the committed warm start (coderl_jax/configs/models/coderl-tiny), so rewards vary, the updates
are real and the alignment buffer fills: a divergence anywhere (data order, rewards, harvest,
sampling, the sharded update) shows up in the compared metrics. The processes are started with
subprocess (never forked from a process that has initialised JAX).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from coderl_jax.data.suite import write_suite

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out_dir: Path, suite: dict, *, process_id: int, num_processes: int, devices: int, port: int):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
           # each host prepares its own copy of the dataset, as on a pod (no shared disk needed)
           "CODERL_DATA_DIR": str(out_dir.parent / f"{out_dir.name}_data{process_id}"),
           "CODERL_COMPILE_CACHE": "0"}  # hermetic: nothing compiled comes from earlier runs
    for key in ("JAX_COORDINATOR_ADDRESS", "CODERL_NUM_PROCESSES", "CODERL_PROCESS_ID", "CODERL_DISTRIBUTED"):
        env.pop(key, None)
    if num_processes > 1:
        env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", CODERL_NUM_PROCESSES=str(num_processes),
                   CODERL_PROCESS_ID=str(process_id))
    overrides = [
        f"model={REPO / 'coderl_jax' / 'configs' / 'models' / 'coderl-tiny'}", f"out_dir={out_dir}",
        f"data.train_path={suite['train']}", f"data.eval_path={suite['heldout']}", "data.shuffle=false",
        "data.max_prompt_tokens=336", "steps=2", "seed=1", "checkpoint_every=1", "progress=false",
        "tensorboard=false", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=160",
        "rollout.prompt_buckets=336", "eval.every=0", "alignment.mode=coderl", "alignment.buffer_strategy=uniform",
        "tracer.workers=1", "optim.learning_rate=1e-4",
        # one decode loop of one step per iteration: the same samples as the default loops (32-step
        # chunks unrolled 4 times), at a tenth of the compile time, which dominates this test (the
        # compile cache is off and all three processes compile everything)
        "rollout.decode_chunk=160", "rollout.decode_unroll=1",
    ]
    cmd = [sys.executable, "-m", "coderl_jax.cli", "train", "--config", str(REPO / "configs" / "tiny_cpu.py"),
           *overrides]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(procs, timeout=600):
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-5000:]


def _metrics(out_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


EXACT = ("reward/mean", "reward/pass_rate", "align/prompts", "align/buffer_size", "harvest/considered",
         "harvest/harvested", "response/length_mean", "actor/updates")
CLOSE = ("actor/loss", "actor/pg_loss", "actor/kl_loss", "actor/grad_norm", "actor/clipfrac",
         "rollout/sampler_trainer_logprob_diff", "advantage/std")


def test_two_processes_train_like_one(tmp_path):
    suite = write_suite(tmp_path / "suite", seed=0, n_train=64, n_heldout=8)
    port = _free_port()
    multi = [_start(tmp_path / "multi", suite, process_id=i, num_processes=2, devices=1, port=port) for i in range(2)]
    single = _start(tmp_path / "single", suite, process_id=0, num_processes=1, devices=2, port=0)
    _wait(multi + [single])

    ref, got = _metrics(tmp_path / "single"), _metrics(tmp_path / "multi")
    assert [m["step"] for m in ref] == [m["step"] for m in got] == [1, 2]
    # the run is not trivial: rewards vary within groups, the buffer fills, step 2 mixes in alignment
    assert ref[0]["reward/std"] > 0 and ref[0]["harvest/harvested"] > 0
    assert ref[1]["align/prompts"] == 2
    for step, (m_got, m_ref) in enumerate(zip(got, ref), start=1):
        for key in EXACT:
            assert m_got.get(key) == m_ref.get(key), f"step {step}: {key} {m_got.get(key)} != {m_ref.get(key)}"
        for key in CLOSE:
            np.testing.assert_allclose(m_got[key], m_ref[key], rtol=1e-4, atol=1e-6, err_msg=f"step {step}: {key}")

    # process 0 writes the run's files; process 1 writes none of them
    assert not (tmp_path / "multi" / "process_1" / "metrics.jsonl").exists()
    assert not (tmp_path / "multi" / "process_1" / "config.json").exists()
    assert (tmp_path / "multi" / "plots" / "reward.png").exists()  # the end-of-run report, by process 0 only
    # the checkpoint holds each process's position in its own data shard
    meta = next((tmp_path / "multi" / "checkpoints" / "2" / "meta").glob("*"))
    state = json.loads(meta.read_text())["data_state"]
    assert len(state["per_process"]) == 2
    single_meta = next((tmp_path / "single" / "checkpoints" / "2" / "meta").glob("*"))
    assert "per_process" not in json.loads(single_meta.read_text())["data_state"]
