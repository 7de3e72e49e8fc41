"""End to end: `coderl train` runs, is killed with SIGKILL mid-run, resumes, and its metrics equal
those of an uninterrupted run (timings aside)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFIG = '''
from pathlib import Path
import numpy as np
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, EvalConfig, RolloutConfig, TrainConfig
from coderl_jax.rl.rewards import register_reward, unit_test_reward

@register_reward("tests_plus_lowercase")
def reward(pool, problems, responses, *, timeout_s):
    # the unit-test reward (through the real tracer pool) plus a dense term, so groups differ
    r, info = unit_test_reward(pool, problems, responses, timeout_s=timeout_s)
    dense = np.array([sum(c.islower() for c in t) / max(len(t), 1) for t in responses], np.float32)
    return r + dense, info

config = TrainConfig(
    model="tiny-random", out_dir="unused", steps=4, seed=3, checkpoint_every=1, keep_checkpoints=2,
    progress=False, tensorboard=False, updates_per_step=2,
    data=DataConfig(train_path="{data}", max_prompt_tokens=160),
    rollout=RolloutConfig(prompts_per_step=2, group_size=4, max_new_tokens=16),
    optim=OptimConfig(learning_rate=3e-3), loss=LossConfig(kl_coef=0.01),
    eval=EvalConfig(every=0),
)
config = TrainConfig(**{{**config.__dict__, "tracer": config.tracer.__class__(reward="tests_plus_lowercase", workers=2)}})
'''

TIMING = ("time/", "perf/")


def _run(config, out_dir, env, extra=()):
    return subprocess.Popen([sys.executable, "-m", "coderl_jax.cli", "train", "--config", str(config),
                             f"out_dir={out_dir}", *extra], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _metrics(out_dir):
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(TIMING)} for r in rows]


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted_run(tmp_path):
    config = tmp_path / "cfg.py"
    config.write_text(CONFIG.format(data=REPO / "coderl_jax" / "configs" / "data" / "tiny_problems.jsonl"))
    env = dict(os.environ, CODERL_CACHE=str(tmp_path / "cache"), CODERL_DATA_DIR=str(tmp_path / "tfds"),
               JAX_PLATFORMS="cpu")

    whole = tmp_path / "whole"
    proc = _run(config, whole, env)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    reference = _metrics(whole)
    assert [r["step"] for r in reference] == [1, 2, 3, 4]
    assert any(r["reward/std"] > 0 for r in reference)  # groups carry signal: updates really change params
    assert all(r["actor/grad_norm"] > 0 for r in reference)

    killed = tmp_path / "killed"
    proc = _run(config, killed, env)
    deadline = time.time() + 900
    while time.time() < deadline:  # kill once step 2 is checkpointed and step 3 is under way
        ckpts = killed / "checkpoints"
        if (killed / "metrics.jsonl").exists() and (ckpts / "2").is_dir() and \
                len((killed / "metrics.jsonl").read_text().splitlines()) >= 2:
            break
        if proc.poll() is not None:
            pytest.fail("run ended before it could be killed:\n" + proc.stdout.read())
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_metrics(killed)) < 4  # it really was interrupted

    proc = _run(config, killed, env)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    resumed = _metrics(killed)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(reference, resumed):
        assert a == b, f"step {a['step']} differs after resume"
