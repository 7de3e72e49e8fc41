"""The training config: typed, nested dataclasses; files under configs/ build one.

Every field can be overridden on the command line (`coderl train --config F steps=20
optim.learning_rate=1e-5`); see config_util.py for the rules.
"""

from __future__ import annotations

import dataclasses

from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.optim import OptimConfig
from coderl_jax.rl.train_step import LossConfig


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_path: str = ""  # a problem file (JSONL / parquet) or a prepared tfds directory
    eval_path: str = ""  # held-out problems for periodic evaluation ("" = none)
    data_dir: str = ""  # where tfds builds go ("" = $CODERL_DATA_DIR or ~/.cache/coderl_jax/tfds)
    system_prompt: str | None = None
    raw_prompts: bool = False  # skip the chat template
    max_prompt_tokens: int = 1024
    shuffle: bool = True


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    prompts_per_step: int = 8
    group_size: int = 4  # samples per prompt (G)
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    cache_dtype: str = "float32"
    dynamic_sampling: bool = False  # DAPO: drop zero-variance groups, sample more to refill
    max_extra_rounds: int = 2  # bound on extra generation rounds when dynamic sampling
    prompts_per_generate: int = 0  # prompts per sampler call (0 = all at once); bounds the KV cache
    # padded prompt lengths the sampler compiles for (() = powers of two, then the longest prompt that
    # fits); one bucket = one compiled rollout program for the whole run
    prompt_buckets: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TracerConfig:
    url: str = ""  # a running `python -m tracer serve` ("" = the in-process pool)
    workers: int = 0  # in-process pool workers (0 = automatic)
    timeout_s: float = 6.0  # per test case, as the paper's runner
    reward: str = "unit_tests"  # a registered reward function (see train/rewards registry)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    data: int = 1
    fsdp: int = -1
    tensor: int = 1


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    every: int = 0  # steps between evaluations (0 = never; the final step always when > 0)
    at_start: bool = True  # also evaluate the starting policy, logged as step 0 (when every > 0)
    max_problems: int = 64
    samples: int = 1  # per problem; greedy when temperature is 0
    temperature: float = 0.0
    max_new_tokens: int = 0  # 0 = the rollout's


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    model: str = ""  # a Hugging Face directory, or "tiny-random" for the built-in random model
    out_dir: str = "runs/default"
    steps: int = 10
    seed: int = 0
    advantage: str = "grpo"
    updates_per_step: int = 1  # mini-batches per rollout batch (the paper: 2)
    micro_batches: int = 1  # gradient accumulation inside a mini-batch
    param_dtype: str = "float32"
    dtype: str = "float32"
    checkpoint_every: int = 5
    checkpoint_dir: str = ""  # "" = <out_dir>/checkpoints; a gs:// path on a TPU pod (every host writes its shards)
    keep_checkpoints: int = 2
    async_checkpointing: bool = True
    max_skipped_steps: int = 3  # consecutive non-finite steps before the run stops
    tensorboard: bool = True
    wandb_project: str = ""
    topology: str = ""  # the TPU topology this config is sized for (`coderl plan`), e.g. "v5p:2x4x4"
    progress: bool = True
    data: DataConfig = DataConfig()
    rollout: RolloutConfig = RolloutConfig()
    tracer: TracerConfig = TracerConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    mesh: MeshConfig = MeshConfig()
    eval: EvalConfig = EvalConfig()
    alignment: AlignmentConfig = AlignmentConfig()

    def validate(self) -> "TrainConfig":
        def need(cond, msg):
            if not cond:
                raise ValueError(f"config: {msg}")

        need(self.model, "model is empty (a Hugging Face directory or 'tiny-random')")
        need(self.data.train_path, "data.train_path is empty")
        need(self.steps >= 0, f"steps={self.steps} must be >= 0")
        need(self.rollout.group_size >= 1, "rollout.group_size must be >= 1")
        rows = self.rollout.prompts_per_step * self.rollout.group_size
        need(rows % (self.updates_per_step * self.micro_batches) == 0,
             f"prompts_per_step x group_size = {rows} rows must divide into updates_per_step="
             f"{self.updates_per_step} x micro_batches={self.micro_batches}")
        need(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")
        need(self.loss.temperature == self.rollout.temperature or self.rollout.temperature == 0,
             f"loss.temperature={self.loss.temperature} must equal rollout.temperature={self.rollout.temperature}: "
             f"the trainer's log-probs must be those of the distribution the rollouts were sampled from")
        self.alignment.validate()
        return self
