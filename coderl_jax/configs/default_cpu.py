"""The embedded default: `coderl train` with no arguments. CodeRL+ (GRPO + execution-semantics
alignment) on the embedded task suite, from the committed warm-started policy, on a laptop CPU.

- data: the task suite (coderl_jax/data/suite.py, seed 0: 3,000 training problems, 300 held-out
  problems whose step compositions never occur in training), generated into the cache
  ($CODERL_CACHE/suite_seed0, ~2 s) when the run starts (`prepare_data`), not when this loads;
- policy: coderl_jax/configs/models/coderl-tiny-steps, a 3.2M-parameter Qwen2 with a 1,024-token
  BPE, warm-started by `coderl sft` on reference solutions, test outputs and traced states whose
  answers reason step by step (one line per step of the program with the value it leaves), at a
  constant learning rate (docs/models.md re-creates it);
- alignment records run on each problem's shortest test input (`alignment.record_input=shortest`):
  a policy this small states short values far better than long ones (docs/findings.md);
- evaluation: greedy held-out pass@1 on 100 held-out problems and the alignment probe (the first 100
  held-out programs, each on its shortest input) every 10 steps and at the end; plots and a summary
  table when the run ends.
"""

from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.configs import MODELS_DIR
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import (DataConfig, EvalConfig, RolloutConfig, SuiteDataConfig, TracerConfig,
                                     TrainConfig)

config = TrainConfig(
    model=str(MODELS_DIR / "coderl-tiny-steps"),
    out_dir="runs/default",
    steps=40,
    seed=0,
    checkpoint_every=5,
    # train_path, eval_path and alignment.probe_path come from the suite (train.jsonl, heldout.jsonl,
    # probe.jsonl) when the run prepares its data
    data=DataConfig(suite=SuiteDataConfig(seed=0, n_train=3000, n_heldout=300, probe_programs=100),
                    max_prompt_tokens=336),
    # 384 new tokens: an alignment answer's step lines and answer line (at most ~360 tokens)
    rollout=RolloutConfig(prompts_per_step=8, group_size=4, max_new_tokens=384, temperature=1.0,
                          prompt_buckets=(336,)),  # one bucket: one compiled rollout program
    tracer=TracerConfig(timeout_s=5.0),
    optim=OptimConfig(learning_rate=5e-5, schedule="constant", weight_decay=0.01),
    loss=LossConfig(kl_coef=0.001),
    eval=EvalConfig(every=10, max_problems=100),
    # a sliding window of the last 256 harvested records: with 8 prompts a step, one step's failures
    # (the paper's "recent" pool) are often fewer than the 3 alignment prompts, which would leave
    # every other step without alignment prompts
    alignment=AlignmentConfig(mode="coderl", buffer_strategy="uniform", buffer_size=256, probe_max=100,
                              record_input="shortest"),
)
