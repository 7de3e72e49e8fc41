"""The jitted programs of a training step, built in one place for every caller.

`coderl train` runs them and `coderl plan` compiles them ahead of time for a TPU topology; both get
them from these builders, so the program that is sized is the program that runs.

    reshard   the trainer's parameters -> the sampling copy: `rollout.dtype`, laid out by the
              sampling rules (tensor-parallel over `tensor`, replicated over the data axes)
    update    the (sharded) policy-gradient train step on one mini-batch, micro-batches
              accumulated inside it, the state donated
    scoring   per-token log-probs and entropies of a batch of rows (old / reference log-probs)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from coderl_jax.models import sharding
from coderl_jax.models.config import ModelConfig
from coderl_jax.optim import make_optimizer
from coderl_jax.rl.train_step import (
    LossConfig, init_train_state, make_sharded_train_step, make_train_step, sequence_logprobs,
)
from coderl_jax.train.config import TrainConfig


class UpdateProgram(NamedTuple):
    """The train step and what its callers need to feed it."""

    step_fn: Callable  # (state, batch parts, rng) -> (state, metrics)
    optimizer: object  # the optax transformation inside step_fn
    loss_cfg: LossConfig  # the loss settings step_fn was built with
    state_shardings: object  # TrainState of shardings, or None on a single device
    batch_sharding: object  # rows over the mesh's batch axes, or None on a single device


def optimizer_config(cfg: TrainConfig):
    """The run's optimizer settings: schedules count updates, `updates_per_step` a step."""
    return dataclasses.replace(cfg.optim, total_steps=max(cfg.steps * cfg.updates_per_step, 1))


def loss_config(cfg: TrainConfig) -> LossConfig:
    """The run's loss settings. Rows are packed to varying lengths, so seq-mean-token-sum-norm
    divides by verl's constant, the longest response, unless the config names another."""
    return dataclasses.replace(cfg.loss, norm_len=cfg.loss.norm_len or cfg.rollout.max_new_tokens)


def build_update(cfg: TrainConfig, model_cfg: ModelConfig, mesh=None) -> UpdateProgram:
    """The update program: plain jit on one device, explicit in/out shardings on a mesh."""
    optimizer = make_optimizer(optimizer_config(cfg))
    loss_cfg = loss_config(cfg)
    if mesh is None:
        step_fn = make_train_step(model_cfg, loss_cfg, optimizer, num_micro=cfg.micro_batches)
        return UpdateProgram(step_fn, optimizer, loss_cfg, None, None)
    step_fn, state_sh, batch_sh = make_sharded_train_step(model_cfg, loss_cfg, optimizer, mesh,
                                                          num_micro=cfg.micro_batches)
    return UpdateProgram(step_fn, optimizer, loss_cfg, state_sh, batch_sh)


def init_state(program: UpdateProgram, params):
    """The train state (step, params, optimizer state), laid out as the update program expects."""
    if program.state_shardings is None:
        return init_train_state(params, program.optimizer)
    return jax.jit(lambda p: init_train_state(p, program.optimizer), out_shardings=program.state_shardings)(params)


def build_scoring(cfg: TrainConfig, model_cfg: ModelConfig, *, in_shardings=None, out_shardings=None) -> Callable:
    """(params, batch) -> (log-probs [B, L], entropy [B, L]) at the sampler's temperature, the
    vocabulary taken in chunks of rows (rl/logprobs.py)."""
    loss = cfg.loss

    def score(params, batch):
        return sequence_logprobs(params, model_cfg, batch, temperature=loss.temperature,
                                 chunk_rows=loss.logprob_chunk_rows,
                                 max_unchunked_elements=loss.logprob_unchunked_elements)

    if in_shardings is None:
        return jax.jit(score)
    return jax.jit(score, in_shardings=in_shardings, out_shardings=out_shardings)


def sampling_dtype(cfg: TrainConfig, backend: str | None = None) -> str:
    """The sampling copy's dtype: `rollout.dtype`, where "auto" is float32 on CPU (where bfloat16
    arithmetic is emulated and slower) and bfloat16 on TPU and GPU."""
    if cfg.rollout.dtype != "auto":
        return cfg.rollout.dtype
    return "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"


def build_reshard(cfg: TrainConfig, model_cfg: ModelConfig, mesh=None, *, backend: str | None = None) -> Callable:
    """params -> the sampling copy: floating-point weights cast to `sampling_dtype`, placed by the
    sampling rules on a mesh (one jitted program; XLA moves each weight once)."""
    dtype = jnp.dtype(sampling_dtype(cfg, backend))

    def copy(params):
        return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)

    if mesh is None:
        return jax.jit(copy)
    return jax.jit(copy, out_shardings=sharding.param_shardings(model_cfg, mesh, sharding.rules_for(model_cfg, "sample")))
