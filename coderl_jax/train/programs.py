"""The jitted programs of a training step, built in one place for every caller.

`coderl train` runs them and `coderl plan` compiles them ahead of time for a TPU topology; both get
them from these builders, so the program that is sized is the program that runs.

    reshard   the trainer's parameters -> the sampling copy: `rollout.dtype`, laid out by the
              sampling rules (tensor-parallel over `tensor`, replicated over the data axes)
    update    the (sharded) policy-gradient train step on one mini-batch, micro-batches
              accumulated inside it, the state donated
    scoring   per-token log-probs and entropies of a batch of rows (old / reference log-probs)
    rollout   the sampler's decode (`generate_tokens`, or `generate_refill` with
              `rollout.decode_slots`) on the sampling copy, one program per prompt bucket

`StepPrograms` gives each program with the abstract arguments of a call of a given shape: `coderl
plan` lowers and compiles those, and a test checks that the programs a run of the loop called
lower to the same text (`recording`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from coderl_jax.models import sharding
from coderl_jax.models.config import ModelConfig
from coderl_jax.optim import make_optimizer
from coderl_jax.rl.train_step import (
    BATCH_FIELDS, LossConfig, init_train_state, make_sharded_train_step, make_train_step, sequence_logprobs,
)
from coderl_jax.train.config import TrainConfig


# ------------------------------------------------------------------------------------------------
# what the loop called


_RECORDING: list | None = None  # (program name, jitted fn, abstract args, kwargs) of every call


@contextlib.contextmanager
def recording():
    """Collect the program calls the loop makes (names, functions, abstract arguments)."""
    global _RECORDING
    previous, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = previous


def abstract(tree):
    """Arrays as `jax.ShapeDtypeStruct`s, keeping the shardings of arrays placed on a mesh (an
    array on one device, e.g. a fresh PRNG key, is left for the program to place, as at a call)."""
    from jax.sharding import NamedSharding

    def one(x):
        if isinstance(x, jax.Array):
            sh = x.sharding if isinstance(x.sharding, NamedSharding) else None
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh)
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        return x

    return jax.tree.map(one, tree)


def _record(name: str, fn, args, kwargs) -> None:
    if _RECORDING is not None:
        _RECORDING.append((name, fn, abstract(args), kwargs))


class Recorded:
    """A jitted program that reports its calls while `recording()` is on; `lower` is the program's."""

    def __init__(self, name: str, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args):
        _record(self.name, self.fn, args, {})
        return self.fn(*args)

    def lower(self, *args, **kwargs):
        return self.fn.lower(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# the builders


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
        return UpdateProgram(Recorded("update", step_fn), optimizer, loss_cfg, None, None)
    step_fn, state_sh, batch_sh = make_sharded_train_step(model_cfg, loss_cfg, optimizer, mesh,
                                                          num_micro=cfg.micro_batches)
    return UpdateProgram(Recorded("update", step_fn), optimizer, loss_cfg, state_sh, batch_sh)


def init_state(program: UpdateProgram, params):
    """The train state (step, params, optimizer state), laid out as the update program expects."""
    if program.state_shardings is None:
        return init_train_state(params, program.optimizer)
    return jax.jit(lambda p: init_train_state(p, program.optimizer), out_shardings=program.state_shardings)(params)


def build_scoring(cfg: TrainConfig, model_cfg: ModelConfig, update: UpdateProgram | None = None) -> Callable:
    """(params, batch) -> (log-probs [B, L], entropy [B, L]) at the sampler's temperature, the
    vocabulary taken in chunks of rows (rl/logprobs.py). On a mesh (`update` built on one), the
    params come in the trainer's layout and the rows split over the batch axes."""
    loss = cfg.loss
    mesh = None if update is None or update.batch_sharding is None else update.batch_sharding.mesh

    def score(params, batch):
        return sequence_logprobs(params, model_cfg, batch, temperature=loss.temperature,
                                 chunk_rows=loss.logprob_chunk_rows,
                                 max_unchunked_elements=loss.logprob_unchunked_elements, mesh=mesh)

    if mesh is None:
        return Recorded("scoring", jax.jit(score))
    rows = update.batch_sharding
    return Recorded("scoring", jax.jit(score, in_shardings=(update.state_shardings.params, rows),
                                       out_shardings=(rows, rows)))


def sampling_dtype(cfg: TrainConfig, backend: str | None = None) -> str:
    """The sampling copy's dtype: `rollout.dtype`, where "auto" is float32 on CPU (where bfloat16
    arithmetic is emulated and slower) and bfloat16 on TPU and GPU."""
    if cfg.rollout.dtype != "auto":
        return cfg.rollout.dtype
    return "float32" if (backend or jax.default_backend()) == "cpu" else "bfloat16"


def stacked_sampling_copy(backend: str | None = None) -> bool:
    """Whether the sampling copy holds its layers stacked [L, ...] for the sampler's layer scan
    (GPU/TPU, see `transformer.scan_layers`), so that no sampler call re-stacks the weights."""
    from coderl_jax.models import transformer

    with transformer.compiling_for(backend or jax.default_backend()):
        return transformer.scan_layers()


def build_reshard(cfg: TrainConfig, model_cfg: ModelConfig, mesh=None, *, backend: str | None = None) -> Callable:
    """params -> the sampling copy: floating-point weights cast to `sampling_dtype`, stacked for
    the layer scan on GPU/TPU, placed by the sampling rules on a mesh (one jitted program; XLA
    moves each weight once)."""
    from coderl_jax.models import transformer

    dtype = jnp.dtype(sampling_dtype(cfg, backend))
    stacked = stacked_sampling_copy(backend)

    def copy(params):
        out = jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)
        return transformer.stack_layers(out, model_cfg) if stacked else out

    if mesh is None:
        return Recorded("reshard", jax.jit(copy))
    return Recorded("reshard", jax.jit(copy, out_shardings=sampling_shardings(model_cfg, mesh, stacked=stacked)))


def sampling_shardings(model_cfg: ModelConfig, mesh, *, stacked: bool = False):
    """The sampling copy's layout: tensor-parallel over `tensor`, replicated over the data axes
    (stacked layers: each layer's layout, the layer axis whole)."""
    from jax.sharding import NamedSharding, PartitionSpec

    out = sharding.param_shardings(model_cfg, mesh, sharding.rules_for(model_cfg, "sample"))
    if not stacked:
        return out
    layer = jax.tree.map(lambda sh: NamedSharding(mesh, PartitionSpec(None, *sh.spec)), out["layers"][0])
    return {**{k: v for k, v in out.items() if k != "layers"}, "stacked_layers": layer}


def reference_dtype(cfg: TrainConfig) -> str:
    """The reference policy's weight dtype: `loss.ref_dtype`, "auto" being the compute dtype."""
    return cfg.dtype if cfg.loss.ref_dtype == "auto" else cfg.loss.ref_dtype


def reference_params(cfg: TrainConfig, params):
    """A copy of `params` as the frozen reference policy, floating-point weights in `reference_dtype`."""
    dtype = jnp.dtype(reference_dtype(cfg))
    return jax.tree.map(lambda x: jnp.copy(x).astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else jnp.copy(x),
                        params)


def rollout_sampling_params(cfg: TrainConfig, seed: int = 0):
    """The sampling settings of the training rollout."""
    from coderl_jax.sampling.sampler import SamplingParams

    r = cfg.rollout
    return SamplingParams(n=r.group_size, max_new_tokens=r.max_new_tokens, temperature=r.temperature,
                          top_p=r.top_p, top_k=r.top_k, stop=tuple(r.stop), seed=seed)


def eval_sampling_params(cfg: TrainConfig, seed: int = 0):
    """The sampling settings of the run's held-out evaluation (`eval`; greedy by default)."""
    from coderl_jax.sampling.sampler import SamplingParams

    e, r = cfg.eval, cfg.rollout
    return SamplingParams(n=e.samples, max_new_tokens=e.max_new_tokens or r.max_new_tokens, temperature=e.temperature,
                          top_p=r.top_p, stop=tuple(r.stop), seed=seed)


def build_sampler(cfg: TrainConfig, model_cfg: ModelConfig, params, tokenizer=None, mesh=None):
    """The trainer's sampler (its decode loops, cache, buckets and refill rows from `rollout`);
    `params` is the sampling copy or a getter of it. Its decode calls are recorded as "rollout"."""
    from coderl_jax.parallel.mesh import BATCH_AXES
    from coderl_jax.sampling.sampler import Sampler

    r = cfg.rollout
    sampler = Sampler(model_cfg, params, tokenizer, max_cache_len=cfg.data.max_prompt_tokens + r.max_new_tokens,
                      cache_dtype=r.cache_dtype, mesh=mesh, data_axes=BATCH_AXES, chunk=r.decode_chunk,
                      unroll=r.decode_unroll, slots=r.decode_slots,
                      **({"buckets": r.prompt_buckets} if r.prompt_buckets else {}))
    sampler.on_call = lambda fn, args, kwargs: _record("rollout", fn, args, kwargs)
    return sampler


# ------------------------------------------------------------------------------------------------
# every program of a step, with abstract arguments


class StepPrograms:
    """The programs of a training step built by the builders above, each with the abstract
    arguments of one call of a given shape: `coderl plan` lowers and compiles these for a TPU
    topology, and they are the programs `coderl train` runs (the loop builds them the same way).
    Each `*_call` returns (program, args, kwargs) for `program.lower(*args, **kwargs)`."""

    def __init__(self, cfg: TrainConfig, model_cfg: ModelConfig, mesh=None, *, backend: str | None = None,
                 tokenizer=None):
        from coderl_jax.models import transformer

        self.cfg, self.model_cfg, self.mesh = cfg, model_cfg, mesh
        self.update = build_update(cfg, model_cfg, mesh)
        self.score_fn = build_scoring(cfg, model_cfg, self.update)
        self.reshard_fn = build_reshard(cfg, model_cfg, mesh, backend=backend)
        self.sampler = build_sampler(cfg, model_cfg, None, tokenizer, mesh)
        shapes = transformer.param_shapes(model_cfg)
        state_sh = self.update.state_shardings
        state = jax.eval_shape(lambda p: init_train_state(p, self.update.optimizer), shapes)
        self.state = state if state_sh is None else jax.tree.map(
            lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), state, state_sh)
        sample = jax.eval_shape(self.reshard_fn.fn, shapes)  # cast, and stacked on GPU/TPU
        self.sample_params = sample if mesh is None else jax.tree.map(
            lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), sample,
            sampling_shardings(model_cfg, mesh, stacked=stacked_sampling_copy(backend)))
        self.key = jax.eval_shape(lambda: jax.random.key(0))
        ref = jnp.dtype(reference_dtype(cfg))
        self.ref_params = jax.tree.map(  # the reference policy: the trainer's layout, `reference_dtype`
            lambda s: jax.ShapeDtypeStruct(s.shape, ref if jnp.issubdtype(s.dtype, jnp.floating) else s.dtype,
                                           sharding=s.sharding), self.state.params)

    def rows(self, count: int, length: int) -> dict:
        """A batch of packed rows as the loop feeds it (`pack_rollouts`' fields the programs read)."""
        dtypes = dict(tokens=jnp.int32, positions=jnp.int32, attn_mask=jnp.bool_, loss_mask=jnp.bool_,
                      old_logprobs=jnp.float32, ref_logprobs=jnp.float32, advantages=jnp.float32)
        return {k: jax.ShapeDtypeStruct((count, length), dtypes[k], sharding=self.update.batch_sharding)
                for k in BATCH_FIELDS}

    def update_call(self, parts: list[tuple[int, int]]):
        """The update on one mini-batch of segments, each (rows, packed length)."""
        return self.update.step_fn, (self.state, tuple(self.rows(n, length) for n, length in parts), self.key), {}

    def scoring_call(self, count: int, length: int, *, reference: bool = False):
        """Old log-probs with the trainer's params, or reference log-probs with the reference's."""
        return self.score_fn, (self.ref_params if reference else self.state.params, self.rows(count, length)), {}

    def reshard_call(self):
        return self.reshard_fn, (self.state.params,), {}

    def rollout_call(self, prompts: int, prompt_len: int, sp=None):
        """The decode of one sampler call of `prompts` prompts padded to `prompt_len` tokens, with
        the rollout's settings unless `sp` says otherwise (evaluation: greedy)."""
        sampler = self.sampler
        rows = sampler.padded_batch(prompts)
        tokens = jax.ShapeDtypeStruct((rows, prompt_len), jnp.int32, sharding=sampler.prompt_sharding())
        mask = jax.ShapeDtypeStruct((rows, prompt_len), jnp.bool_, sharding=sampler.prompt_sharding())
        spec = sampler.spec(sp or rollout_sampling_params(self.cfg))
        return sampler.decode_call(self.sample_params, tokens, mask, self.key, spec)

    def eval_call(self, prompts: int, prompt_len: int):
        """The decode of the held-out evaluation's sampler call (all its problems at once)."""
        return self.rollout_call(prompts, prompt_len, eval_sampling_params(self.cfg))
