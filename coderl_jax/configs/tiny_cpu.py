"""A small CPU run: the built-in tiny random policy on a handful of toy problems, a few steps.

It exercises every part of the loop (sampling, sandboxed unit tests, advantages, updates,
checkpoints, metrics) in a few minutes on 2 cores; a random policy earns ~0 reward, so it shows
the machinery, not learning.
"""

from coderl_jax.configs import DATA_DIR
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, EvalConfig, RolloutConfig, TrainConfig

config = TrainConfig(
    model="tiny-random",
    out_dir="runs/tiny_cpu",
    steps=4,
    seed=0,
    checkpoint_every=2,
    data=DataConfig(train_path=str(DATA_DIR / "tiny_problems.jsonl"),
                    eval_path=str(DATA_DIR / "tiny_problems.jsonl"), max_prompt_tokens=192),
    rollout=RolloutConfig(prompts_per_step=4, group_size=4, max_new_tokens=64, temperature=1.0),
    optim=OptimConfig(learning_rate=1e-4, schedule="constant"),
    loss=LossConfig(kl_coef=0.001),
    eval=EvalConfig(every=2, max_problems=10),
)
