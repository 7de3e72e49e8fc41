"""The paper's training setting (CodeRL+, arXiv 2510.18471, run with verl) as a TrainConfig builder.

The pod configs (coderl_jax/configs/pods.py, presets `qwen25_coder_*`) call `paper_config` with a
model, a TPU topology and the layout that makes the step fit there (`coderl plan` checks it);
everything else is the paper's:

  GRPO, 128 prompts x 8 samples per step, 2 mini-batch updates per step (64 prompts each), 1 epoch;
  AdamW lr 1e-6 constant, weight decay 0.01, gradient clip 1.0; clip 0.2 / 0.2, dual clip 3.0,
  token-mean; KL loss k3 (low_var_kl) 0.001; entropy 0; temperature 1.0, top-p 1;
  prompts up to 1,024 tokens, responses up to 8,192; greedy validation every 10 steps;
  CodeRL+ alignment with 40% alignment prompts, under the official code's rules: targets are the
  last 3 module-level variables of simple types in first-definition order (`alignment.targets=
  official`), call-style programs are not harvested (`harvest_calls=False`), the prompt follows the
  official one's order and content (`prompt=official`), every program is traced once
  (`check_determinism=False`) and values of any length are asked about (`max_value_chars=0`);
  656 steps (2 epochs over ~25k problems). docs/paper.md lists every setting beside the paper's.

Shapes: prompts padded to 1,024 tokens, rows packed to 2,048, 4,096 or 1,024 + max_new_tokens.

Numerics on TPU: float32 master weights and optimizer state, bfloat16 activations and KV cache,
every decoder layer rematerialised in the backward pass. The sandbox must isolate the network
(`tracer.require_isolation=True`).
"""

from __future__ import annotations

from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, EvalConfig, MeshConfig, RolloutConfig, TracerConfig, TrainConfig

PAPER_STEPS = 656


def paper_config(*, model: str, out_dir: str, topology: str, mesh: MeshConfig, micro_batches: int,
                 prompts_per_generate: int = 0, decode_slots: int = 0, max_new_tokens: int = 8192,
                 checkpoint_dir: str = "",
                 train_path: str = "data/prime_code/train.parquet",
                 eval_path: str = "data/prime_code/validation.jsonl") -> TrainConfig:
    longest = 1024 + max_new_tokens
    return TrainConfig(
        model=model,
        out_dir=out_dir,
        topology=topology,
        steps=PAPER_STEPS,
        seed=0,
        advantage="grpo",
        updates_per_step=2,
        micro_batches=micro_batches,
        # the shapes a run compiles: update and scoring at one of three packed lengths, every prompt
        # padded to 1,024 tokens (one rollout program)
        packed_lengths=tuple(sorted({min(2048, longest), min(4096, longest), longest})),
        param_dtype="float32",
        dtype="bfloat16",
        checkpoint_every=10,
        keep_checkpoints=3,
        checkpoint_dir=checkpoint_dir,  # the pods': gs://{bucket}/..., filled by `bucket=NAME`
        data=DataConfig(train_path=train_path, eval_path=eval_path, max_prompt_tokens=1024),
        rollout=RolloutConfig(prompts_per_step=128, group_size=8, max_new_tokens=max_new_tokens, temperature=1.0,
                              top_p=1.0, cache_dtype="bfloat16", prompts_per_generate=prompts_per_generate,
                              decode_slots=decode_slots, prompt_buckets=(1024,)),
        optim=OptimConfig(learning_rate=1e-6, schedule="constant", weight_decay=0.01, grad_clip=1.0),
        loss=LossConfig(clip_low=0.2, clip_high=0.2, clip_c=3.0, agg="token-mean", kl_coef=0.001, kl_kind="k3",
                        entropy_coef=0.0, remat=True),
        mesh=mesh,
        eval=EvalConfig(every=10, max_problems=512, samples=1, temperature=0.0),
        # the official code's harvest, targets and prompt (the CPU presets keep this project's rules)
        alignment=AlignmentConfig(mode="coderl", alpha=0.6, k=3, targets="official", harvest_calls=False,
                                  record_input="first",
                                  prompt="official", check_determinism=False, max_value_chars=0),
        # model-written code on a pod runs only in a network-isolated sandbox (bubblewrap, which
        # tpu_scripts/setup.sh installs and checks): a host without it stops the run at start-up
        tracer=TracerConfig(require_isolation=True),
    )
