"""The embedded default: `coderl train` with no arguments. CodeRL+ (GRPO + execution-semantics
alignment) on the embedded task suite, from the committed warm-started policy, on a laptop CPU.

- data: the task suite (coderl_jax/data/suite.py, seed 0: 3,000 training problems, 300 held-out
  problems whose step compositions never occur in training), generated into the cache (~2 s);
- policy: configs/models/coderl-tiny-early, a 3.2M-parameter Qwen2 with a 1,024-token BPE,
  warm-started by `coderl sft` on reference solutions and traced states and stopped mid-training
  (450 steps at a constant learning rate, held-out greedy pass@1 27%; docs/sft.md re-creates it).
  Its supervised loss has not settled, so GRPO on unit-test rewards has room to move it; from the
  fully annealed 600-step model (configs/models/coderl-tiny, 58%) every update that moved the
  policy lowered pass@1 (README);
- evaluation: greedy held-out pass@1 on 100 held-out problems and the alignment probe (32 held-out
  programs) every 10 steps and at the end; plots and a summary table when the run ends.
"""

import json
import os
from pathlib import Path

from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.data.suite import generate_suite, write_suite
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, EvalConfig, RolloutConfig, TracerConfig, TrainConfig

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("CODERL_CACHE", Path.home() / ".cache" / "coderl_jax")) / "suite_seed0"
SUITE = write_suite(CACHE, seed=0, n_train=3000, n_heldout=300)  # deterministic; rewritten only if changed


def _probe_file(n: int = 32) -> str:
    """Held-out reference programs with their first input: the alignment probe's unseen programs."""
    path = CACHE / "probe.jsonl"
    rows = [{"id": p.id, "program": p.metadata["solution"], "stdin": p.tests["inputs"][0]}
            for p in generate_suite(0, 0, 300)["heldout"][:n]]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return str(path)


config = TrainConfig(
    model=str(HERE / "models" / "coderl-tiny-early"),
    out_dir="runs/default",
    steps=40,
    seed=0,
    checkpoint_every=5,
    data=DataConfig(train_path=SUITE["train"], eval_path=SUITE["heldout"], max_prompt_tokens=336),
    rollout=RolloutConfig(prompts_per_step=8, group_size=4, max_new_tokens=176, temperature=1.0,
                          prompt_buckets=(336,)),  # one bucket: one compiled rollout program
    tracer=TracerConfig(timeout_s=5.0),
    optim=OptimConfig(learning_rate=5e-5, schedule="constant", weight_decay=0.01),
    loss=LossConfig(kl_coef=0.001),
    eval=EvalConfig(every=10, max_problems=100),
    # a sliding window of the last 256 harvested records: with 8 prompts a step, one step's failures
    # (the paper's "recent" pool) are often fewer than the 3 alignment prompts, which would leave
    # every other step without alignment prompts
    alignment=AlignmentConfig(mode="coderl", buffer_strategy="uniform", buffer_size=256, probe_path=_probe_file(),
                              probe_max=32),
)
