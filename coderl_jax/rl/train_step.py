"""The pure policy-gradient train step: (state, batch, rng) -> (state, metrics).

A batch is one mini-batch of sequences (prompt + response), split into `num_micro` micro-batches
whose gradients are accumulated; the loss normaliser is computed once over the whole mini-batch,
so the result does not depend on the split or on the sharding.

Batch fields, all [B, L] and aligned on *predicting* positions: entry t is about token t+1.
    tokens       int32  prompt + response (left padding allowed)
    positions    int32  RoPE positions (0 at the first real token)
    attn_mask    bool   real tokens (false at padding)
    loss_mask    bool   true at t when tokens[t+1] is a response token to train on
    old_logprobs f32    log p_old(tokens[t+1]) recomputed by the trainer before the update
    ref_logprobs f32    the frozen reference policy's (only read when kl_coef > 0)
    advantages   f32    per-token advantages (a sequence-level advantage broadcast by the caller)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from coderl_jax.models import sharding, transformer
from coderl_jax.models.config import ModelConfig
from coderl_jax.parallel import BATCH_AXES, data_parallel_size
from coderl_jax.rl.kl import kl_penalty
from coderl_jax.rl.logprobs import token_logprobs
from coderl_jax.rl.policy_loss import loss_denominator, loss_numerator, policy_loss_per_token
# the optimizer lives in coderl_jax.optim (both trainers use it); re-exported here for older imports
from coderl_jax.optim import OptimConfig, learning_rate_schedule, make_optimizer, param_path  # noqa: F401

BATCH_FIELDS = ("tokens", "positions", "attn_mask", "loss_mask", "old_logprobs", "ref_logprobs", "advantages")


@dataclasses.dataclass(frozen=True)
class LossConfig:
    clip_low: float = 0.2
    clip_high: float = 0.2
    clip_c: float | None = 3.0
    agg: str = "token-mean"
    kl_coef: float = 0.001
    kl_kind: str = "k3"
    entropy_coef: float = 0.0
    temperature: float = 1.0  # the sampler's; log-probs are taken of logits / temperature
    logprob_chunk_rows: int = 1024
    # when a micro-batch's rows x vocab logits are at most this many, log-probs are taken in one
    # chunk (small vocabularies: no loop; see rl/logprobs.py)
    logprob_unchunked_elements: int = 2**25
    norm_len: int = 0  # seq-mean-token-sum-norm's constant divisor (0 = the packed length; verl: the max response length)
    remat: bool = False  # recompute each decoder layer in the backward pass (less memory, ~1/3 more compute)
    # the reference policy's weights (KL term): "auto" = the compute dtype, which the forward casts
    # every weight to before use anyway (bfloat16 on accelerators: half the memory, same scores)
    ref_dtype: str = "auto"


class TrainState(NamedTuple):
    step: jax.Array
    params: Any
    opt_state: Any


def init_train_state(params, optimizer: optax.GradientTransformation) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def sequence_logprobs(params, model_cfg: ModelConfig, batch: dict, *, temperature: float = 1.0,
                      chunk_rows: int = 1024, remat: bool = False, max_unchunked_elements: int = 0, mesh=None):
    """(logprobs_bt, entropy_bt) of tokens[t+1] at every position t (last position: 0). `mesh`: the
    mesh the program runs on (see `transformer.forward`)."""
    hidden_blh = transformer.forward(params, model_cfg, batch["tokens"], batch["positions"],
                                     mask_bt=batch["attn_mask"], return_hidden=True, remat=remat,
                                     mesh=mesh).logits_btv
    targets_bl = jnp.concatenate([batch["tokens"][:, 1:], jnp.zeros_like(batch["tokens"][:, :1])], axis=1)
    return token_logprobs(hidden_blh, transformer.head_weight(params, model_cfg), targets_bl,
                          chunk_rows=chunk_rows, temperature=temperature,
                          max_unchunked_elements=max_unchunked_elements)


def _micro_loss(params, micro: dict, denominator, model_cfg: ModelConfig, loss_cfg: LossConfig, mesh=None):
    logp_bl, entropy_bl = sequence_logprobs(params, model_cfg, micro, temperature=loss_cfg.temperature,
                                            chunk_rows=loss_cfg.logprob_chunk_rows, remat=loss_cfg.remat,
                                            max_unchunked_elements=loss_cfg.logprob_unchunked_elements,
                                            mesh=mesh)
    mask = micro["loss_mask"].astype(jnp.float32)
    pg_bl, aux = policy_loss_per_token(logp_bl, micro["old_logprobs"], micro["advantages"],
                                       clip_low=loss_cfg.clip_low, clip_high=loss_cfg.clip_high,
                                       clip_c=loss_cfg.clip_c)
    agg = loss_cfg.agg
    pg_loss = loss_numerator(pg_bl, mask, agg) / denominator
    entropy = loss_numerator(entropy_bl, mask, agg) / denominator
    total = pg_loss - loss_cfg.entropy_coef * entropy
    kl = jnp.zeros((), jnp.float32)
    if loss_cfg.kl_coef:
        kl = loss_numerator(kl_penalty(logp_bl, micro["ref_logprobs"], loss_cfg.kl_kind), mask, agg) / denominator
        total = total + loss_cfg.kl_coef * kl
    ratio, adv = aux["ratio"], aux["adv"]
    token_sums = {  # sums over valid tokens; divided by the mini-batch's token count at the end
        "clipfrac": jnp.sum(aux["clipped"] * mask),
        "clipfrac_high": jnp.sum(((ratio > 1 + loss_cfg.clip_high) & (adv > 0)) * mask),
        "clipfrac_low": jnp.sum(((ratio < 1 - loss_cfg.clip_low) & (adv < 0)) * mask),
        "clipfrac_dual": jnp.sum(aux["dual"] * mask),
        "ppo_kl": jnp.sum(-aux["log_ratio"] * mask),
        "entropy_token_mean": jnp.sum(entropy_bl * mask),
        "logprob_diff_abs": jnp.sum(jnp.abs(logp_bl - micro["old_logprobs"]) * mask),
    }
    return total, dict(pg_loss=pg_loss, kl_loss=kl, entropy=entropy, **token_sums)


def train_step(state: TrainState, batch: dict | tuple[dict, ...], rng: jax.Array, *, model_cfg: ModelConfig,
               loss_cfg: LossConfig, optimizer: optax.GradientTransformation, num_micro: int = 1, mesh=None):
    """One optimizer update on a mini-batch; returns (new_state, metrics).

    `batch` is one dict of [B, L] arrays, or a tuple of such dicts ("segments") whose shapes may
    differ: rows of different lengths (short code rows, long alignment rows) each packed to their
    own length. The segments form one mini-batch: one normaliser over all of them (token count,
    sequence count), gradients summed, one optimizer update, so the result equals packing every row
    to the longest length (tests/rl/test_train_step.py), with less padding to compute.

    A non-finite loss or gradient skips the update (parameters and optimizer state unchanged,
    `metrics["skipped"] = 1`) so the caller can report it and stop if it repeats. `mesh`: the mesh
    the step runs on, for attention kernels that run per shard.
    """
    del rng  # the loss is deterministic; kept in the signature for stochastic extensions
    segments = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    for seg in segments:
        if seg["tokens"].shape[0] % num_micro:
            raise ValueError(f"batch of {seg['tokens'].shape[0]} sequences does not split into {num_micro} "
                             "micro-batches")
    masks = [seg["loss_mask"].astype(jnp.float32) for seg in segments]
    # token and sequence counts add up over segments; seq-mean-token-sum-norm's constant does not
    norm_len = loss_cfg.norm_len or max(m.shape[-1] for m in masks)
    per_segment = [loss_denominator(m, loss_cfg.agg, norm_len) for m in masks]
    denominator = per_segment[0] if loss_cfg.agg == "seq-mean-token-sum-norm" else sum(per_segment)
    denominator = jnp.maximum(denominator, 1e-8)
    token_count = sum(jnp.sum(m) for m in masks)
    num_tokens = jnp.maximum(token_count, 1.0)
    grad_fn = jax.value_and_grad(functools.partial(_micro_loss, mesh=mesh), has_aux=True)

    def segment_grads(seg):
        if num_micro == 1:
            return grad_fn(state.params, seg, denominator, model_cfg, loss_cfg)
        # micro-batch i holds rows i, i + num_micro, ...: with the batch split over devices in
        # contiguous blocks, every micro-batch then stays spread over all devices
        b = seg["tokens"].shape[0]
        micro = jax.tree.map(lambda x: jnp.moveaxis(x.reshape(b // num_micro, num_micro, *x.shape[1:]), 1, 0), seg)

        def accumulate(carry, micro_batch):
            grads_acc, loss_acc, aux_acc = carry
            (loss_i, aux_i), grads_i = grad_fn(state.params, micro_batch, denominator, model_cfg, loss_cfg)
            return (jax.tree.map(jnp.add, grads_acc, grads_i), loss_acc + loss_i,
                    jax.tree.map(jnp.add, aux_acc, aux_i)), None

        zeros_aux = jax.eval_shape(lambda: grad_fn(state.params, jax.tree.map(lambda x: x[0], micro),
                                                   denominator, model_cfg, loss_cfg)[0][1])
        init = (jax.tree.map(jnp.zeros_like, state.params), jnp.zeros((), jnp.float32),
                jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros_aux))
        (grads_s, loss_s, aux_s), _ = jax.lax.scan(accumulate, init, micro)
        return (loss_s, aux_s), grads_s

    (loss, aux), grads = segment_grads(segments[0])
    for seg in segments[1:]:
        (loss_s, aux_s), grads_s = segment_grads(seg)
        loss, aux, grads = loss + loss_s, jax.tree.map(jnp.add, aux, aux_s), jax.tree.map(jnp.add, grads, grads_s)

    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
    new_state = TrainState(step=state.step + finite.astype(jnp.int32), params=keep(new_params, state.params),
                           opt_state=keep(new_opt_state, state.opt_state))
    metrics = {
        "loss": loss, "pg_loss": aux["pg_loss"], "kl_loss": aux["kl_loss"], "entropy_loss": aux["entropy"],
        "grad_norm": grad_norm, "skipped": 1.0 - finite.astype(jnp.float32), "num_tokens": token_count,
    }
    for key in ("clipfrac", "clipfrac_high", "clipfrac_low", "clipfrac_dual", "ppo_kl", "entropy_token_mean",
                "logprob_diff_abs"):
        metrics[key] = aux[key] / num_tokens
    metrics["advantage_mean"] = sum(jnp.sum(seg["advantages"] * m) for seg, m in zip(segments, masks)) / num_tokens
    return new_state, metrics


def make_train_step(model_cfg: ModelConfig, loss_cfg: LossConfig, optimizer: optax.GradientTransformation, *,
                    num_micro: int = 1, state_shardings=None, batch_sharding=None):
    """The jitted step with donated state; with shardings, explicit in/out shardings for a mesh
    (see `make_sharded_train_step`, which builds them)."""
    fn = functools.partial(train_step, model_cfg=model_cfg, loss_cfg=loss_cfg, optimizer=optimizer,
                           num_micro=num_micro)
    if state_shardings is None:
        return jax.jit(lambda s, b, r: fn(s, b, r), donate_argnums=(0,))
    replicated = NamedSharding(batch_sharding.mesh, P())
    fn = functools.partial(fn, mesh=batch_sharding.mesh)
    return jax.jit(lambda s, b, r: fn(s, b, r), donate_argnums=(0,),
                   in_shardings=(state_shardings, batch_sharding, replicated),
                   out_shardings=(state_shardings, replicated))


# ------------------------------------------------------------------------------------------------
# Sharding on a ("data", "fsdp", "tensor") mesh


def train_state_shardings(model_cfg: ModelConfig, optimizer: optax.GradientTransformation, mesh: Mesh,
                          rules=None) -> TrainState:
    """A TrainState of NamedShardings: parameters by the training rules, every optimizer-state leaf
    that mirrors a parameter (Adam's mu and nu, ...) like that parameter, the rest (counts,
    schedule state) replicated.

    An optimizer-state leaf mirrors a parameter when the end of its tree path is that parameter's
    path in the params dict and the shapes agree (optax nests the params tree inside its states).
    """
    rules = sharding.rules_for(model_cfg, "train") if rules is None else rules
    shapes = transformer.param_shapes(model_cfg)
    p_shardings = sharding.param_shardings(model_cfg, mesh, rules)
    by_path = {tuple(sharding.path_names(path)): (leaf.shape, s) for (path, leaf), s in zip(
        jax.tree_util.tree_flatten_with_path(shapes)[0], jax.tree.leaves(p_shardings), strict=True)}
    replicated = NamedSharding(mesh, P())

    def opt_leaf(path, leaf):
        names = tuple(sharding.path_names(path))
        for start in range(len(names)):
            shape, s = by_path.get(names[start:], (None, None))
            if s is not None and shape == leaf.shape:
                return s
        return replicated

    opt_shapes = jax.eval_shape(optimizer.init, shapes)
    return TrainState(step=replicated, params=p_shardings,
                      opt_state=jax.tree_util.tree_map_with_path(opt_leaf, opt_shapes))


def train_batch_sharding(mesh: Mesh) -> NamedSharding:
    """Every batch field [B, L]: rows over ("data", "fsdp"), the length replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def shard_state(state: TrainState, state_shardings: TrainState) -> TrainState:
    """Move (or reshard) a TrainState onto the mesh."""
    return jax.device_put(state, state_shardings)


def shard_batch(batch: dict, batch_sharding: NamedSharding, num_micro: int = 1) -> dict:
    """Put a host batch on the mesh; its rows (per micro-batch) must split evenly over the data axes.
    Every process passes the same host batch and copies only its own devices' rows (multi-host safe)."""
    from coderl_jax.parallel.hosts import place

    groups = data_parallel_size(batch_sharding.mesh)
    rows = len(batch["tokens"])
    if rows % (groups * num_micro):
        raise ValueError(f"batch of {rows} sequences with {num_micro} micro-batch(es) does not split over the "
                         f"{groups} data-parallel groups of the mesh {dict(batch_sharding.mesh.shape)}")
    return {k: place(v, batch_sharding) for k, v in batch.items()}


def make_sharded_train_step(model_cfg: ModelConfig, loss_cfg: LossConfig, optimizer: optax.GradientTransformation,
                            mesh: Mesh, *, num_micro: int = 1, rules=None):
    """(jitted step, state shardings, batch sharding) for `mesh`.

    The step has explicit in/out shardings and donates the state; put the state and batches on the
    mesh with `shard_state` / `shard_batch`. The result equals the single-device step up to float
    summation order (tests/rl/multidevice_train_step.py).
    """
    state_sh = train_state_shardings(model_cfg, optimizer, mesh, rules)
    batch_sh = train_batch_sharding(mesh)
    step = make_train_step(model_cfg, loss_cfg, optimizer, num_micro=num_micro, state_shardings=state_sh,
                           batch_sharding=batch_sh)
    return step, state_sh, batch_sh


def make_logprob_fn(model_cfg: ModelConfig, *, temperature: float = 1.0, chunk_rows: int = 1024):
    """Jitted (params, batch) -> logprobs [B, L]: old log-probs before an update, or the reference's."""
    return jax.jit(lambda params, batch: sequence_logprobs(params, model_cfg, batch, temperature=temperature,
                                                           chunk_rows=chunk_rows)[0])
