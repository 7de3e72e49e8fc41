"""Jitted KV-cache sampler: prefill once per prompt, decode G samples per prompt.

Two layers:

* `generate_tokens(params, cfg, prompt_bp, prompt_mask_bp, key, spec=...)` is a pure jitted
  function over token arrays. The RL loop calls it every step with fresh params: the params are an
  argument, so new values never recompile. The sampling settings (n, max new tokens, temperature,
  top-k/p, EOS ids, chunking) sit in the static, hashable `DecodeSpec` (one compile per setting).
* `Sampler(...).generate(prompts, SamplingParams(...))` tokenizes, left-pads to a length bucket,
  calls `generate_tokens`, then cuts at EOS / stop strings on the host and decodes text.

How the decode loop is organised (see benchmarks/sampler.py for the measurements):

* Prefill runs once over the B left-padded prompts into a cache of exactly P (bucket) slots; the
  cache, the last-position logits and the positions are then repeated n times (row r*n + j is
  sample j of prompt r), so GRPO groups never repeat the prefill.
* Decoding runs in chunks, and chunk c attends over only the P + (tokens so far + chunk length)
  slots it can reach, so early tokens do not pay for the whole length. On GPU/TPU the cache is
  allocated once at its final size and each chunk reads its part (`attend_len`); on XLA:CPU the
  cache grows by one pad per chunk instead (see `grow_cache_between_chunks`). Each chunk is a
  `while_loop` that stops early once every row has hit an EOS id; its body runs `unroll` decode
  steps, which amortises the per-iteration loop overhead of XLA.
* Refill (`generate_refill`, `Sampler(slots=...)`): the rows of a call decode through fewer
  cache rows; a row whose sequence has ended takes the next waiting sequence (its prompt's keys and
  values copied in from the prefill), so one long sample does not hold a whole batch. Every row
  then attends over the full cache, and writes its keys at its own slot.
* Sampling is fused into the step and needs one uniform number per row (inverse-CDF sampling over
  two levels of blocks, so the cumulative sums are two small matmuls): no Gumbel noise over the
  whole vocabulary and no sort unless top-p asks for one.

Log-probs. `logprobs` are the log-probabilities of the distribution actually sampled from, i.e.
log-softmax of the *processed* logits (divided by the temperature, restricted to the top-k / top-p
set) at the sampled token. `raw_logprobs` are log-softmax of the model's unprocessed logits
(temperature 1, full vocabulary). They coincide at temperature 1 without top-k / top-p. Greedy
decoding (temperature 0) samples from a point mass, so its `logprobs` are the raw ones.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from coderl_jax.models import transformer
from coderl_jax.models.config import ModelConfig

# trace-time counters: tests check that a call re-uses a compilation, and that prefill runs over
# the B prompts (not B*n rows). Each entry: (name, shape info). Not used by the hot path.
TRACE_LOG: list[tuple] = []
TRACE_COUNTS: collections.Counter = collections.Counter()

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
FINISH_REASONS = ("eos", "stop", "length")


# ------------------------------------------------------------------------------------------------
# Public data types


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    n: int = 1  # samples per prompt (a GRPO group)
    max_new_tokens: int = 256
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k
    stop: tuple[str, ...] = ()  # stop strings, checked on the decoded text
    eos_ids: tuple[int, ...] | None = None  # None: the model's / tokenizer's EOS ids; (): none
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))


@dataclasses.dataclass
class Completion:
    token_ids: list[int]  # generated tokens, including the EOS token when finish_reason == "eos"
    text: str  # decoded text (special tokens skipped), cut before a stop string
    logprobs: list[float]  # sampler log-probs (processed distribution), one per token
    raw_logprobs: list[float]  # log-softmax of the raw logits, one per token
    finish_reason: str  # "eos" | "stop" | "length"

    def to_json(self) -> dict:
        return {"text": self.text, "token_ids": self.token_ids, "logprobs": self.logprobs,
                "finish_reason": self.finish_reason}


class DecodeSpec(NamedTuple):
    """Static (compile-time) description of a decode; hashable."""

    n: int
    max_new_tokens: int
    greedy: bool
    top_k: int  # 0: none
    use_top_p: bool
    eos_ids: tuple[int, ...]
    pad_id: int
    temperature: float = 1.0  # ignored when greedy
    top_p: float = 1.0
    cache_dtype: str = "float32"  # "float32" | "bfloat16"
    chunk: int = 32  # decode steps per chunk (the cache grows by this much per chunk)
    unroll: int = 4  # decode steps per while_loop iteration


class GenerateOut(NamedTuple):
    tokens_rn: jax.Array  # [B*n, N] int32, pad after the first EOS
    logprobs_rn: jax.Array  # [B*n, N] float32, 0 after the first EOS
    raw_logprobs_rn: jax.Array  # [B*n, N] float32
    num_tokens_r: jax.Array  # [B*n] int32: tokens up to and including the first EOS, else N


# ------------------------------------------------------------------------------------------------
# Sampling from one step's logits


def _inverse_cdf(weights_bk, u_b):
    """Index i with cumsum(w)[i-1] <= u*sum(w) < cumsum(w)[i] for each row; weights >= 0.

    Two levels of blocks, so both cumulative sums are small triangular matmuls (a plain cumsum over
    a large vocabulary is slow on XLA:CPU).
    """
    b, k = weights_bk.shape
    block = 1 << max(0, math.ceil(math.log2(math.sqrt(k))))
    nb = -(-k // block)
    w_bnk = jnp.pad(weights_bk, ((0, 0), (0, nb * block - k))).reshape(b, nb, block)
    block_cum_bn = w_bnk.sum(-1) @ jnp.triu(jnp.ones((nb, nb), weights_bk.dtype))
    target_b = u_b * block_cum_bn[:, -1]
    blk_b = jnp.minimum((block_cum_bn < target_b[:, None]).sum(-1), nb - 1)
    before_b = jnp.where(blk_b > 0, jnp.take_along_axis(block_cum_bn, (blk_b - 1)[:, None] * (blk_b > 0)[:, None],
                                                        axis=1)[:, 0], 0.0)
    inner_bk = jnp.take_along_axis(w_bnk, blk_b[:, None, None], axis=1)[:, 0]
    inner_cum_bk = inner_bk @ jnp.triu(jnp.ones((block, block), weights_bk.dtype))
    j_b = jnp.minimum((inner_cum_bk < (target_b - before_b)[:, None]).sum(-1), block - 1)
    idx_b = jnp.minimum(blk_b * block + j_b, k - 1)
    # rounding can land on a zero-weight entry at a block edge: fall back to the heaviest entry
    ok_b = jnp.take_along_axis(weights_bk, idx_b[:, None], axis=1)[:, 0] > 0
    return jnp.where(ok_b, idx_b, jnp.argmax(weights_bk, axis=-1)).astype(jnp.int32)


def _logsumexp_parts(logits_bv):
    m_b = jnp.max(logits_bv, axis=-1)
    e_bv = jnp.exp(logits_bv - m_b[:, None])
    return m_b, e_bv, jnp.log(e_bv.sum(-1))


def sample_step(logits_bv, u_b, spec: DecodeSpec):
    """One token per row: (tokens_b, sampler logprobs_b, raw logprobs_b). See the module docstring."""
    logits_bv = logits_bv.astype(jnp.float32)
    temperature = spec.temperature
    rows = jnp.arange(logits_bv.shape[0])
    m_b, e_bv, log_z_b = _logsumexp_parts(logits_bv)
    if spec.greedy:
        tok_b = jnp.argmax(logits_bv, axis=-1).astype(jnp.int32)
        raw_b = logits_bv[rows, tok_b] - m_b - log_z_b
        return tok_b, raw_b, raw_b
    if not spec.top_k and not spec.use_top_p:
        z_bv = logits_bv / temperature
        zm_b, ze_bv, z_log_z_b = (m_b, e_bv, log_z_b) if temperature == 1 else _logsumexp_parts(z_bv)
        tok_b = _inverse_cdf(ze_bv, u_b)
        lp_b = z_bv[rows, tok_b] - zm_b - z_log_z_b
        raw_b = logits_bv[rows, tok_b] - m_b - log_z_b
        return tok_b, lp_b, raw_b
    k = spec.top_k or logits_bv.shape[-1]
    vals_bk, idx_bk = jax.lax.top_k(logits_bv / temperature, k)  # sorted, descending
    if spec.use_top_p:
        probs_bk = jax.nn.softmax(vals_bk, axis=-1)
        before_bk = jnp.cumsum(probs_bk, axis=-1) - probs_bk
        vals_bk = jnp.where(before_bk < spec.top_p, vals_bk, -jnp.inf)  # keeps at least the top token
    km_b, ke_bk, k_log_z_b = _logsumexp_parts(vals_bk)
    choice_b = _inverse_cdf(ke_bk, u_b)
    tok_b = idx_bk[rows, choice_b].astype(jnp.int32)
    lp_b = vals_bk[rows, choice_b] - km_b - k_log_z_b
    raw_b = logits_bv[rows, tok_b] - m_b - log_z_b
    return tok_b, lp_b, raw_b


# ------------------------------------------------------------------------------------------------
# The pure generate function


MAX_CHUNKS = 8  # compiled decode loops per generate (bounds compile time for long generations)


def chunk_schedule(max_new_tokens: int, chunk: int, unroll: int) -> list[int]:
    """Decode steps per chunk (each a multiple of `unroll`) covering tokens 2..max_new_tokens;
    chunks grow beyond `chunk` so that there are at most MAX_CHUNKS of them."""
    steps, out = max_new_tokens - 1, []
    chunk = max(chunk, -(-steps // MAX_CHUNKS))
    while steps > 0:
        c = min(chunk, steps)
        c = -(-c // unroll) * unroll
        out.append(c)
        steps -= c
    return out


def cache_slots(prompt_len: int, spec: DecodeSpec) -> int:
    """Cache slots a decode uses at most (the last chunk may overshoot max_new_tokens by < unroll)."""
    return prompt_len + 1 + sum(chunk_schedule(spec.max_new_tokens, spec.chunk, spec.unroll))


def _prefill(params: dict, cfg: ModelConfig, prompt_bp, prompt_mask_bp, spec: DecodeSpec):
    """Prefill the B prompts into a cache of exactly P slots. Returns the params as the decode uses
    them (stacked for the layer scan on GPU/TPU), the cache, the last position's logits, the
    positions and the output head."""
    b, p = prompt_bp.shape
    positions_bp = jnp.maximum(jnp.cumsum(prompt_mask_bp, axis=1) - 1, 0).astype(jnp.int32)
    TRACE_LOG.append(("prefill", b, p))
    stacked = transformer.scan_layers()  # GPU/TPU: one scanned layer body (compile time independent of depth)
    if stacked and "stacked_layers" not in params:
        params = transformer.stack_layers(params, cfg)
    cache = transformer.init_kv_cache(cfg, b, p, jnp.dtype(spec.cache_dtype), stacked="stacked_layers" in params)
    hidden_bph, cache = transformer.forward(params, cfg, prompt_bp, positions_bp, kv_cache=cache, cache_index=0,
                                            key_mask_bs=prompt_mask_bp, return_hidden=True)
    head_hv = transformer.head_weight(params, cfg).astype(hidden_bph.dtype)
    return params, cache, hidden_bph[:, -1] @ head_hv, positions_bp, head_hv


def grow_cache_between_chunks() -> bool:
    """XLA:CPU: the decode cache grows by one chunk before each chunk's loop, which then attends
    over the whole (just large enough) cache. A cache allocated once and read through a slice per
    chunk measured 15% slower there (docs/benchmarks.md): the slice of the loop-carried cache is
    not free. GPU/TPU: allocated once at its final size, no whole-cache copy (and no second cache
    in memory) between chunks."""
    return transformer.target_backend() == "cpu"


def _grow_cache(cache, num_slots: int):
    """Pad each (k_bkds, v_bksd) pair (per layer, or stacked [L, ...]) with empty slots up to num_slots."""
    def pad(x, axis):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, num_slots - x.shape[axis])
        return jnp.pad(x, widths)
    return [(pad(k, k.ndim - 1), pad(v, v.ndim - 2)) for k, v in cache]


def _draws(key, spec: DecodeSpec, rows: int):
    """The uniform numbers of a decode, [steps, rows]: step i of row r uses [i, r] whichever loop
    runs it, so refilled and static decodes of the same rows sample the same tokens."""
    return jax.random.uniform(key, (1 + sum(chunk_schedule(spec.max_new_tokens, spec.chunk, spec.unroll)), rows),
                              jnp.float32)


@functools.partial(jax.jit, static_argnames=("cfg", "spec"))
def generate_tokens(params: dict, cfg: ModelConfig, prompt_bp, prompt_mask_bp, key, limit_r=None, *,
                    spec: DecodeSpec) -> GenerateOut:
    """Sample `spec.n` completions per left-padded prompt. Pure; params are an explicit argument.

    prompt_bp: [B, P] int32, left-padded; prompt_mask_bp: [B, P] bool (false at padding).
    limit_r: optional [B*n] int32, a per-row cap on new tokens (<= max_new_tokens).
    Returns rows in prompt-major order: row r*n + j is sample j of prompt r.
    """
    TRACE_COUNTS["generate_tokens"] += 1
    b, p = prompt_bp.shape
    n, max_new = spec.n, spec.max_new_tokens
    rows = b * n
    prompt_mask_bp = prompt_mask_bp.astype(bool)
    params, cache, logits_bv, positions_bp, head_hv = _prefill(params, cfg, prompt_bp, prompt_mask_bp, spec)

    # repeat per sample: row r*n + j
    rep = (lambda x, axis=0: jnp.repeat(x, n, axis=axis)) if n > 1 else (lambda x, axis=0: x)
    schedule = chunk_schedule(max_new, spec.chunk, spec.unroll)
    total = 1 + sum(schedule)
    cache = jax.tree.map(lambda x: rep(x, x.ndim - 4), cache)  # the cache's batch is axis -4
    grow = grow_cache_between_chunks()
    if not grow:  # allocated once at its final size; each chunk attends over its reachable slots
        cache = _grow_cache(cache, p + total)
    logits_rv, key_mask_rp = rep(logits_bv), rep(prompt_mask_bp)
    position_r = rep(positions_bp[:, -1]) + 1
    key_mask_rs = jnp.concatenate([key_mask_rp, jnp.ones((rows, total), bool)], axis=1)
    TRACE_LOG.append(("decode", rows, p))

    uniforms_tr = _draws(key, spec, rows)
    eos = jnp.asarray(spec.eos_ids or (-1,), jnp.int32)

    tok_r, lp_r, raw_r = sample_step(logits_rv, uniforms_tr[0], spec)
    tokens_rt = jnp.full((rows, total), spec.pad_id, jnp.int32).at[:, 0].set(tok_r)
    lps_rt = jnp.zeros((rows, total), jnp.float32).at[:, 0].set(lp_r)
    raws_rt = jnp.zeros((rows, total), jnp.float32).at[:, 0].set(raw_r)
    done_r = jnp.isin(tok_r, eos) if spec.eos_ids else jnp.zeros((rows,), bool)
    if limit_r is not None:
        done_r = done_r | (limit_r <= 1)
    num_r = jnp.where(done_r, 1, total).astype(jnp.int32)

    def one_step(state, attend_len):
        i, cache, tok_r, position_r, tokens_rt, lps_rt, raws_rt, done_r, num_r = state
        slot = p + i - 1  # the slot of token i-1 (the one fed now)
        hidden_r1h, cache = transformer.forward(params, cfg, tok_r[:, None], position_r[:, None], kv_cache=cache,
                                                cache_index=slot, key_mask_bs=key_mask_rs, attend_len=attend_len,
                                                return_hidden=True)
        logits_rv = hidden_r1h[:, 0] @ head_hv
        u_r = jax.lax.dynamic_index_in_dim(uniforms_tr, i, keepdims=False)
        tok_r, lp_r, raw_r = sample_step(logits_rv, u_r, spec)
        tok_r = jnp.where(done_r, spec.pad_id, tok_r)
        lp_r, raw_r = jnp.where(done_r, 0.0, lp_r), jnp.where(done_r, 0.0, raw_r)
        tokens_rt = jax.lax.dynamic_update_slice(tokens_rt, tok_r[:, None], (0, i))
        lps_rt = jax.lax.dynamic_update_slice(lps_rt, lp_r[:, None], (0, i))
        raws_rt = jax.lax.dynamic_update_slice(raws_rt, raw_r[:, None], (0, i))
        stop_r = ~done_r & jnp.isin(tok_r, eos) if spec.eos_ids else jnp.zeros_like(done_r)
        if limit_r is not None:
            stop_r = stop_r | (~done_r & (i + 1 >= limit_r))
        num_r = jnp.where(stop_r, i + 1, num_r)
        return (i + 1, cache, tok_r, position_r + 1, tokens_rt, lps_rt, raws_rt, done_r | stop_r, num_r)

    state = (jnp.int32(1), cache, tok_r, position_r, tokens_rt, lps_rt, raws_rt, done_r, num_r)
    filled = 1
    for steps in schedule:  # one compiled loop per chunk, each attending over the slots it can reach
        end = filled + steps
        if grow:
            state = (state[0], _grow_cache(state[1], p + end), *state[2:])

        def cond(state, end=end):
            return (state[0] < end) & ~jnp.all(state[7])

        def body(state, attend_len=None if grow else p + end):
            for _ in range(spec.unroll):
                state = one_step(state, attend_len)
            return state

        state = jax.lax.while_loop(cond, body, state)
        filled = end
    _, _, _, _, tokens_rt, lps_rt, raws_rt, _, num_r = state
    return GenerateOut(tokens_rt[:, :max_new], lps_rt[:, :max_new], raws_rt[:, :max_new],
                       jnp.minimum(num_r, max_new))


@functools.partial(jax.jit, static_argnames=("cfg", "spec", "slots", "mesh", "data_axes"))
def generate_refill(params: dict, cfg: ModelConfig, prompt_bp, prompt_mask_bp, key, limit_r=None, *,
                    spec: DecodeSpec, slots: int, mesh=None, data_axes: tuple[str, ...] = ()) -> GenerateOut:
    """`generate_tokens` through `slots` decode rows that are refilled: the B*n sequences wait in a
    queue, and when a row's sequence ends (EOS or its cap) the next waiting sequence takes the row
    (its prompt's keys and values copied into the row's cache) and decodes on. The call ends when
    the last sequence ends, not after B*n / slots static batches each as long as its slowest row.

    Same arguments and result as `generate_tokens` (row r*n + j is sample j of prompt r), and the
    same tokens: each sequence's step i draws the same uniform number as in `generate_tokens`.

    With a `mesh`, every data shard (`data_axes`) refills its own slots / shards rows from its own
    prompts (`shard_map`), so no prompt cache or decode row crosses shards; the other mesh axes
    (tensor) stay with the compiler.
    """
    TRACE_COUNTS["generate_refill"] += 1
    b, p = prompt_bp.shape
    rows = b * spec.n
    uniforms_tr = _draws(key, spec, rows)
    limit_r = (jnp.full((rows,), spec.max_new_tokens, jnp.int32) if limit_r is None
               else jnp.minimum(limit_r, spec.max_new_tokens).astype(jnp.int32))
    axes = tuple(a for a in data_axes if mesh is not None and a in mesh.shape)
    shards = int(np.prod([mesh.shape[a] for a in axes])) if axes else 1
    if shards == 1:
        return _refill(params, prompt_bp, prompt_mask_bp, uniforms_tr, limit_r, cfg, spec, slots)
    if b % shards or slots % shards:
        raise ValueError(f"{b} prompts and {slots} slots must split over the {shards} data shards")
    from jax.sharding import PartitionSpec as P

    rows_spec = P(axes)
    local = jax.shard_map(
        functools.partial(_refill, cfg=cfg, spec=spec, slots=slots // shards), mesh=mesh,
        in_specs=(P(), rows_spec, rows_spec, P(None, axes), rows_spec), out_specs=GenerateOut(*[rows_spec] * 4),
        axis_names=frozenset(axes), check_vma=False)
    return local(params, prompt_bp, prompt_mask_bp, uniforms_tr, limit_r)


def _refill(params, prompt_bp, prompt_mask_bp, uniforms_tr, limit_r, cfg: ModelConfig, spec: DecodeSpec,
            slots: int) -> GenerateOut:
    """The refilled decode of `generate_refill` over these prompts and rows (one data shard's)."""
    b, p = prompt_bp.shape
    n, max_new = spec.n, spec.max_new_tokens
    rows = b * n
    prompt_mask_bp = prompt_mask_bp.astype(bool)
    params, prompt_cache, logits_bv, positions_bp, head_hv = _prefill(params, cfg, prompt_bp, prompt_mask_bp, spec)
    total = uniforms_tr.shape[0]
    eos = jnp.asarray(spec.eos_ids or (-1,), jnp.int32)
    TRACE_LOG.append(("decode_refill", slots, p))

    # every sequence's first token, from its prompt's last logits (the decode rows start at token 2)
    prompt_of_r = jnp.arange(rows) // n
    tok0_r, lp0_r, raw0_r = sample_step(logits_bv[prompt_of_r], uniforms_tr[0], spec)
    tokens_rt = jnp.full((rows, max_new), spec.pad_id, jnp.int32).at[:, 0].set(tok0_r)
    lps_rt = jnp.zeros((rows, max_new), jnp.float32).at[:, 0].set(lp0_r)
    raws_rt = jnp.zeros((rows, max_new), jnp.float32).at[:, 0].set(raw0_r)
    done0_r = (limit_r <= 1) | (jnp.isin(tok0_r, eos) if spec.eos_ids else False)
    num_r = jnp.where(done0_r, 1, limit_r).astype(jnp.int32)
    queue_q = jnp.argsort(done0_r, stable=True).astype(jnp.int32)  # sequences that need decoding first
    waiting = rows - done0_r.sum().astype(jnp.int32)

    cache = transformer.init_kv_cache(cfg, slots, p + max_new, jnp.dtype(spec.cache_dtype),
                                      stacked="stacked_layers" in params)
    slot_state = (jnp.full((slots,), rows, jnp.int32),  # the sequence in each row (rows: none)
                  jnp.zeros((slots,), jnp.int32),  # tokens it has so far
                  jnp.full((slots,), spec.pad_id, jnp.int32),  # its last token
                  jnp.zeros((slots,), jnp.int32),  # that token's position
                  jnp.zeros((slots, p), bool),  # its prompt's key mask
                  jnp.zeros((slots,), bool))  # active

    def refill(carry):
        cache, (seq_s, i_s, tok_s, pos_s, mask_sp, active_s), next_q = carry
        free_s = ~active_s
        rank_s = jnp.cumsum(free_s) - 1
        take_s = free_s & (next_q + rank_s < waiting)
        new_seq_s = queue_q[jnp.minimum(next_q + rank_s, rows - 1)]
        prompt_s = new_seq_s // n

        # copy each taken row's prompt keys and values in, one row at a time: the cost is that of
        # the rows refilled, not of rewriting the whole cache's prompt part
        fill_s = jnp.nonzero(take_s, size=slots, fill_value=0)[0]

        def copy_row(j, cache):
            row = fill_s[j]
            out = []
            for pair, prompt_pair in zip(cache, prompt_cache):
                out.append(tuple(
                    jax.lax.dynamic_update_slice(
                        c, jax.lax.dynamic_slice_in_dim(pc, prompt_s[row], 1, axis=c.ndim - 4),
                        tuple(row if a == c.ndim - 4 else 0 for a in range(c.ndim)))
                    for c, pc in zip(pair, prompt_pair)))
            return out

        cache = jax.lax.fori_loop(0, take_s.sum(), copy_row, cache)
        seq_s = jnp.where(take_s, new_seq_s, seq_s)
        i_s = jnp.where(take_s, 1, i_s)
        tok_s = jnp.where(take_s, tok0_r[new_seq_s], tok_s)
        pos_s = jnp.where(take_s, positions_bp[prompt_s, -1] + 1, pos_s)
        mask_sp = jnp.where(take_s[:, None], prompt_mask_bp[prompt_s], mask_sp)
        return cache, (seq_s, i_s, tok_s, pos_s, mask_sp, active_s | take_s), next_q + take_s.sum()

    def one_step(state):
        cache, (seq_s, i_s, tok_s, pos_s, mask_sp, active_s), next_q, tokens_rt, lps_rt, raws_rt, num_r = state
        key_mask_ss = jnp.concatenate([mask_sp, jnp.ones((slots, max_new), bool)], axis=1)
        hidden_s1h, cache = transformer.forward(params, cfg, tok_s[:, None], pos_s[:, None], kv_cache=cache,
                                                cache_index=p + i_s - 1, key_mask_bs=key_mask_ss,
                                                return_hidden=True)
        seq_c = jnp.minimum(seq_s, rows - 1)
        step_s = jnp.minimum(i_s, total - 1)
        tok, lp, raw = sample_step(hidden_s1h[:, 0] @ head_hv, uniforms_tr[step_s, seq_c], spec)
        out_s = jnp.where(active_s, seq_s, rows)  # inactive rows write nowhere
        tokens_rt = tokens_rt.at[out_s, i_s].set(tok, mode="drop")
        lps_rt = lps_rt.at[out_s, i_s].set(lp, mode="drop")
        raws_rt = raws_rt.at[out_s, i_s].set(raw, mode="drop")
        i_s = jnp.where(active_s, i_s + 1, i_s)
        hit_s = jnp.isin(tok, eos) if spec.eos_ids else jnp.zeros_like(active_s)
        end_s = active_s & (hit_s | (i_s >= limit_r[seq_c]))
        num_r = num_r.at[jnp.where(end_s, seq_s, rows)].set(i_s, mode="drop")
        slot_state = (seq_s, i_s, tok, pos_s + 1, mask_sp, active_s & ~end_s)
        return cache, slot_state, next_q, tokens_rt, lps_rt, raws_rt, num_r

    def cond(state):
        return jnp.any(state[1][5]) | (state[2] < waiting)

    def body(state):
        cache, slot_state, next_q, *outs = state
        cache, slot_state, next_q = jax.lax.cond(jnp.any(~slot_state[5]) & (next_q < waiting), refill,
                                                 lambda c: c, (cache, slot_state, next_q))
        state = (cache, slot_state, next_q, *outs)
        for _ in range(spec.unroll):
            state = one_step(state)
        return state

    state = jax.lax.while_loop(cond, body, (cache, slot_state, jnp.int32(0), tokens_rt, lps_rt, raws_rt, num_r))
    *_, tokens_rt, lps_rt, raws_rt, num_r = state
    return GenerateOut(tokens_rt, lps_rt, raws_rt, num_r)


# ------------------------------------------------------------------------------------------------
# Host side: tokenization, bucketing, stop strings


def pick_bucket(length: int, buckets: Sequence[int]) -> int:
    for bucket in sorted(buckets):
        if bucket >= length:
            return bucket
    return length  # longer than every bucket: its own shape


def left_pad(prompts: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.full((len(prompts), length), pad_id, np.int32)
    mask = np.zeros((len(prompts), length), bool)
    for r, ids in enumerate(prompts):
        if len(ids):
            tokens[r, length - len(ids):] = ids
            mask[r, length - len(ids):] = True
    return tokens, mask


def cut_at_stop(token_ids: list[int], stop: Sequence[str], decode: Callable[[list[int]], str]):
    """(kept tokens, text, stopped): the shortest token prefix whose text contains a stop string,
    and that text cut before the first stop string."""
    def first_stop(text):
        found = [text.find(s) for s in stop if s and s in text]
        return min(found) if found else -1

    if first_stop(decode(token_ids)) < 0:
        return token_ids, decode(token_ids), False
    lo, hi = 1, len(token_ids)  # binary search: containing a stop string is monotone in the prefix
    while lo < hi:
        mid = (lo + hi) // 2
        if first_stop(decode(token_ids[:mid])) >= 0:
            hi = mid
        else:
            lo = mid + 1
    text = decode(token_ids[:lo])
    return token_ids[:lo], text[: first_stop(text)], True


class Sampler:
    """Text in, completions out. `params` may be a dict or a zero-argument callable returning the
    current params (the RL loop passes a getter so each call samples with the latest policy).

    max_cache_len bounds prompt bucket + max_new_tokens; buckets are the padded prompt lengths
    (compiles are cached per (bucket, batch, DecodeSpec)). With a mesh, the prompt batch is sharded
    over `data_axes` (padded to a multiple of their size) and params are used as placed.
    `slots` > 0 decodes a call of more rows than that through `slots` refilled rows
    (`generate_refill`); 0 decodes every row at once (`generate_tokens`).
    """

    def __init__(self, cfg: ModelConfig, params, tokenizer=None, *, max_cache_len: int | None = None,
                 cache_dtype: str = "float32", buckets: Sequence[int] = DEFAULT_BUCKETS, mesh=None,
                 data_axes: tuple[str, ...] = ("data",), chunk: int = 32, unroll: int = 4, slots: int = 0):
        if slots < 0:
            raise ValueError(f"slots must be >= 0, got {slots}")
        self.cfg, self.tokenizer = cfg, tokenizer
        self._params = params
        self.max_cache_len = max_cache_len or cfg.max_position_embeddings
        if cache_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"cache_dtype must be 'float32' or 'bfloat16', got {cache_dtype!r}")
        self.cache_dtype, self.buckets = cache_dtype, tuple(sorted(buckets))
        self.mesh, self.data_axes = mesh, tuple(data_axes)
        self.chunk, self.unroll = chunk, unroll
        self.slots = self.padded_batch(slots)  # a multiple of the data shards
        self.on_call: Callable | None = None  # sees (fn, args, kwargs) of every decode call

    @property
    def params(self) -> dict:
        return self._params() if callable(self._params) else self._params

    def eos_ids(self, sp: SamplingParams) -> tuple[int, ...]:
        if sp.eos_ids is not None:
            return tuple(sp.eos_ids)
        ids = set(self.cfg.eos_token_ids)
        if self.tokenizer is not None and self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return tuple(sorted(ids))

    def pad_id(self) -> int:
        for candidate in (self.cfg.pad_token_id, getattr(self.tokenizer, "pad_token_id", None),
                          *self.cfg.eos_token_ids):
            if candidate is not None:
                return int(candidate)
        return 0

    def spec(self, sp: SamplingParams) -> DecodeSpec:
        return DecodeSpec(n=sp.n, max_new_tokens=sp.max_new_tokens, greedy=sp.temperature == 0,
                          top_k=min(sp.top_k, self.cfg.vocab_size), use_top_p=sp.top_p < 1,
                          eos_ids=self.eos_ids(sp), pad_id=self.pad_id(),
                          temperature=float(sp.temperature or 1.0), top_p=float(sp.top_p),
                          cache_dtype=self.cache_dtype,
                          chunk=self.chunk, unroll=self.unroll)

    def encode(self, prompts) -> list[list[int]]:
        if all(isinstance(p, str) for p in prompts):
            if self.tokenizer is None:
                raise ValueError("text prompts need a tokenizer")
            return [list(self.tokenizer.encode(p)) for p in prompts]
        return [[int(t) for t in p] for p in prompts]

    def generate_arrays(self, prompt_ids: list[list[int]], sp: SamplingParams) -> tuple[GenerateOut, DecodeSpec]:
        """Bucket, pad and run `generate_tokens`; returns device arrays (rows r*n + j)."""
        if not prompt_ids:
            raise ValueError("no prompts")
        spec = self.spec(sp)
        longest = max(len(p) for p in prompt_ids)
        if min(len(p) for p in prompt_ids) == 0:
            raise ValueError("empty prompt")
        limit = min(self.max_cache_len, self.cfg.max_position_embeddings)
        if longest + sp.max_new_tokens > limit:
            raise ValueError(
                f"prompt of {longest} tokens + max_new_tokens={sp.max_new_tokens} exceeds the context "
                f"({limit} tokens: max_cache_len={self.max_cache_len}, "
                f"max_position_embeddings={self.cfg.max_position_embeddings})")
        length = pick_bucket(longest, self.prompt_lengths(sp.max_new_tokens))
        batch = len(prompt_ids)
        padded = self.padded_batch(batch)
        ids = list(prompt_ids) + [prompt_ids[0]] * (padded - batch)
        tokens, mask = left_pad(ids, length, spec.pad_id)
        fn, args, kwargs = self.decode_call(self.params, self._place(tokens), self._place(mask),
                                            jax.random.key(sp.seed), spec)
        if self.on_call is not None:
            self.on_call(fn, args, kwargs)
        out = fn(*args, **kwargs)
        if padded != batch:
            out = GenerateOut(*(x[: batch * sp.n] for x in out))
        return out, spec

    def prompt_lengths(self, max_new_tokens: int, upto: int | None = None) -> list[int]:
        """The padded prompt lengths a call may compile for: the buckets that fit in the cache with
        `max_new_tokens`, then the longest prompt the cache takes (prompts past the last bucket
        share one shape instead of compiling one per length). With `upto`, those a prompt of at
        most `upto` tokens can land in."""
        limit = min(self.max_cache_len, self.cfg.max_position_embeddings)
        fitting = sorted({b for b in self.buckets if b + max_new_tokens <= limit} | {limit - max_new_tokens})
        if upto is None:
            return fitting
        return [b for b in fitting if b <= pick_bucket(upto, fitting)]

    def decode_call(self, params, tokens, mask, key, spec: DecodeSpec) -> tuple[Callable, tuple, dict]:
        """(jitted function, arguments, keyword arguments) of the decode of one call: `generate_tokens`,
        or `generate_refill` when the call has more rows than `slots`. The arguments may be abstract
        (`coderl plan` lowers the same call; see `prompt_sharding`)."""
        args = (params, self.cfg, tokens, mask, key)
        if self.slots and self.slots < tokens.shape[0] * spec.n:
            on_mesh = {"mesh": self.mesh, "data_axes": self.data_axes} if self.mesh is not None else {}
            return generate_refill, args, {"spec": spec, "slots": self.slots, **on_mesh}
        return generate_tokens, args, {"spec": spec}

    def prompt_sharding(self):
        """Where a call's prompt rows go: split over the data axes of the mesh (None without one)."""
        if self.mesh is None:
            return None
        from jax.sharding import NamedSharding, PartitionSpec

        return NamedSharding(self.mesh, PartitionSpec(self.data_axes))

    def padded_batch(self, prompts: int) -> int:
        """Prompt rows of a call of `prompts` prompts: a multiple of the data shards."""
        shards = _data_size(self.mesh, self.data_axes)
        return -(-prompts // shards) * shards

    def _place(self, x):
        if self.mesh is None:
            return x
        from coderl_jax.parallel.hosts import place
        return place(x, self.prompt_sharding())  # multi-host safe

    def generate(self, prompts, sp: SamplingParams | None = None) -> list[list[Completion]]:
        """One list of `sp.n` completions per prompt (text or token-id prompts)."""
        sp = sp or SamplingParams()
        prompt_ids = self.encode(prompts)
        out, spec = self.generate_arrays(prompt_ids, sp)
        from coderl_jax.parallel.hosts import to_host

        tokens, lps, raws, nums = (to_host(x) for x in out)  # all rows on every host
        results = []
        for r in range(len(prompt_ids)):
            group = []
            for row in range(r * sp.n, (r + 1) * sp.n):
                group.append(self._completion(tokens[row], lps[row], raws[row], int(nums[row]), spec, sp))
            results.append(group)
        return results

    def _decode(self, ids: list[int]) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _completion(self, tokens, lps, raws, num, spec: DecodeSpec, sp: SamplingParams) -> Completion:
        ids = [int(t) for t in tokens[:num]]
        reason = "eos" if ids and ids[-1] in spec.eos_ids else "length"
        text_ids = ids[:-1] if reason == "eos" else ids
        stopped = False
        if sp.stop and self.tokenizer is not None:
            kept, text, stopped = cut_at_stop(text_ids, sp.stop, self._decode)
        if stopped:
            ids, reason = kept, "stop"
        else:
            text = self._decode(text_ids)
        k = len(ids)
        return Completion(ids, text, [float(x) for x in lps[:k]], [float(x) for x in raws[:k]], reason)


def _data_size(mesh, axes) -> int:
    if mesh is None:
        return 1
    return int(np.prod([mesh.shape[a] for a in axes if a in mesh.shape]))
