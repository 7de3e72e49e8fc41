"""The decoder-only transformer shared by Qwen2/2.5, Qwen3 and Llama 3.x.

Flax NNX defines the modules; everything compiled uses them functionally through `forward`, which
takes the parameter pytree (a plain nested dict of arrays, see `init_params`) explicitly.

Shape suffixes: b batch, t query tokens, s key/cache slots, h hidden, n query heads,
k kv heads, g query heads per kv head, d head dim, f MLP hidden, v vocab.

KV cache: one `(k_bkds, v_bksd)` pair per layer, preallocated by `init_kv_cache`. Keys are stored
transposed (slots minor) so that one-token decode computes its scores as a broadcast
multiply-add over d with the slots as the vector dimension; values keep d minor for the weighted
sum. (On XLA:CPU that vectorises along the long slot axis, where `[b, s, k, d]` with a batched dot
would run many tiny d-long products; docs/benchmarks.md has the decode timings.)
A call with a cache writes its T new keys/values at slots [cache_index, cache_index + T) and
attends, for each query at slot cache_index + i, to the slots <= its own whose `key_mask_bs` is
true (left padding and empty slots are false). A one-token call may give `cache_index` as a
vector, one slot per row (a sampler whose rows are at different points of different sequences). `attend_len` (static) limits attention to the first
attend_len slots, so a sampler can attend over only the filled part of a large cache.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from coderl_jax.models import blocked_attention
from coderl_jax.models.config import ModelConfig

NEG_INF = -1e30  # finite, so fully masked rows (left padding) give zeros, not NaN


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, param_dtype):
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
        self.eps = eps

    def __call__(self, x):
        dtype = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.weight[...].astype(dtype) * x32.astype(dtype)


def _dense_init(rngs: nnx.Rngs, shape, dtype, std=0.02):
    return nnx.Param((std * jax.random.normal(rngs.params(), shape, jnp.float32)).astype(dtype))


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        h, n, k, d, pd = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.jnp_param_dtype
        self.q_proj = _dense_init(rngs, (h, n * d), pd)  # stored [in, out]
        self.k_proj = _dense_init(rngs, (h, k * d), pd)
        self.v_proj = _dense_init(rngs, (h, k * d), pd)
        self.o_proj = _dense_init(rngs, (n * d, h), pd)
        if cfg.attention_bias:
            self.q_bias = nnx.Param(jnp.zeros((n * d,), pd))
            self.k_bias = nnx.Param(jnp.zeros((k * d,), pd))
            self.v_bias = nnx.Param(jnp.zeros((k * d,), pd))
        if cfg.qk_norm:
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps, pd)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps, pd)
        self.cfg = cfg

    def __call__(self, x_bth, cos_btd, sin_btd, *, cache, cache_index, key_mask_bs, attend_len):
        cfg = self.cfg
        dt = x_bth.dtype
        b, t, _ = x_bth.shape
        n, k, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim

        weights = [getattr(self, name + "_proj")[...] for name in "qkv"]
        biases = [getattr(self, name + "_bias")[...] for name in "qkv"] if cfg.attention_bias else None
        q_btnd, k_btkd, v_btkd = project_qkv(x_bth, weights, biases, cfg)
        if cfg.qk_norm:
            q_btnd = self.q_norm(q_btnd)
            k_btkd = self.k_norm(k_btkd)
        q_btnd = apply_rope(q_btnd, cos_btd, sin_btd)
        k_btkd = apply_rope(k_btkd, cos_btd, sin_btd)

        # the modules run only with a cache (prefill and decode); training and scoring take the
        # functional no-cache path below (`_forward_no_cache`)
        g = n // k
        q_btkgd = q_btnd.reshape(b, t, k, g, d)
        # with a cache: write this call's keys/values, attend over the first s slots
        new_k, new_v = k_btkd.transpose(0, 2, 3, 1), v_btkd.transpose(0, 2, 1, 3)  # the cache layouts
        if len(cache) == 3:  # every layer's cache stacked, [L, ...], and this layer's index (scan_layers)
            ck, cv, layer = cache
            lead, new_k, new_v = (layer,), new_k[None], new_v[None]
        else:
            (ck, cv), lead = cache, ()
        if jnp.ndim(cache_index):  # one write slot per row (decode with refilled rows): t == 1
            rows, every = jnp.arange(b), slice(None)
            ck = ck.at[(*lead, rows, every, every, cache_index)].set(k_btkd[:, 0].astype(ck.dtype))
            cv = cv.at[(*lead, rows, every, cache_index)].set(v_btkd[:, 0].astype(cv.dtype))
        else:
            ck = jax.lax.dynamic_update_slice(ck, new_k.astype(ck.dtype), (*lead, 0, 0, 0, cache_index))
            cv = jax.lax.dynamic_update_slice(cv, new_v.astype(cv.dtype), (*lead, 0, 0, cache_index, 0))
        new_cache = (ck, cv, *lead)
        ck_bkds, cv_bksd = (ck[lead[0]], cv[lead[0]]) if lead else (ck, cv)  # this layer's keys and values
        s = attend_len or ck_bkds.shape[-1]
        keys_bkds, values_bksd = ck_bkds[..., :s].astype(dt), cv_bksd[:, :, :s].astype(dt)
        key_mask_bs = key_mask_bs[:, :s]
        q_slot_t = jnp.asarray(cache_index)[..., None] + jnp.arange(t)  # [t], or [b, t] per row
        if t == 1 and decode_multiply_add():  # decode on XLA:CPU: multiply-add over d (no batched dot)
            # written as d explicit multiply-adds of key rows [b, k, s]: XLA fuses them into one
            # elementwise loop over [b, k, g, s], which on XLA:CPU beats both a reduce over d (a
            # library reduce call) and a batched dot with these tiny per-head shapes
            q_bkgd = q_btkgd[:, 0]
            scores_bkgs = q_bkgd[:, :, :, 0, None] * keys_bkds[:, :, None, 0]
            for i in range(1, d):
                scores_bkgs = scores_bkgs + q_bkgd[:, :, :, i, None] * keys_bkds[:, :, None, i]
            scores_bkgts = scores_bkgs[:, :, :, None, :]
        else:
            scores_bkgts = jnp.einsum("btkgd,bkds->bkgts", q_btkgd, keys_bkds)

        scores_bkgts = scores_bkgts.astype(jnp.float32) / math.sqrt(d)
        causal_ts = jnp.arange(s) <= q_slot_t[..., None]
        mask_bts = causal_ts & key_mask_bs[:, None, :]
        scores_bkgts = jnp.where(mask_bts[:, None, None], scores_bkgts, NEG_INF)
        probs_bkgts = jax.nn.softmax(scores_bkgts, axis=-1).astype(dt)
        if t == 1:  # decode: weighted sum over the slots, d as the vector dimension
            out_bkgd = (probs_bkgts[:, :, :, 0, :, None] * values_bksd[:, :, None]).sum(axis=3)
            out_btkgd = out_bkgd[:, None]
        else:
            out_btkgd = jnp.einsum("bkgts,bksd->btkgd", probs_bkgts, values_bksd)
        out_bth = out_btkgd.reshape(b, t, n * d) @ self.o_proj[...].astype(dt)
        return out_bth, new_cache


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        h, f, pd = cfg.hidden_size, cfg.intermediate_size, cfg.jnp_param_dtype
        self.gate_proj = _dense_init(rngs, (h, f), pd)
        self.up_proj = _dense_init(rngs, (h, f), pd)
        self.down_proj = _dense_init(rngs, (f, h), pd)

    def __call__(self, x_bth):
        return gated_mlp(x_bth, self.gate_proj[...], self.up_proj[...], self.down_proj[...])


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        pd = cfg.jnp_param_dtype
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd)
        self.self_attn = Attention(cfg, rngs)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd)
        self.mlp = MLP(cfg, rngs)

    def __call__(self, x_bth, cos_btd, sin_btd, **attn_kwargs):
        attn_bth, cache = self.self_attn(self.input_layernorm(x_bth), cos_btd, sin_btd, **attn_kwargs)
        x_bth = x_bth + attn_bth
        x_bth = x_bth + self.mlp(self.post_attention_layernorm(x_bth))
        return x_bth, cache


class Transformer(nnx.Module):
    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        pd = cfg.jnp_param_dtype
        self.embed_tokens = _dense_init(rngs, (cfg.vocab_size, cfg.hidden_size), pd)
        self.layers = nnx.List([Block(cfg, rngs) for _ in range(cfg.num_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, pd)
        if not cfg.tie_word_embeddings:
            self.lm_head = _dense_init(rngs, (cfg.hidden_size, cfg.vocab_size), pd)  # [h, v]
        self.cfg = cfg

    def __call__(self, tokens_bt, positions_bt, *, kv_cache, cache_index, key_mask_bs, attend_len=None,
                 return_hidden=False):
        cfg = self.cfg
        x_bth = jnp.take(self.embed_tokens[...], tokens_bt, axis=0).astype(cfg.jnp_dtype)
        cos_btd, sin_btd = rope_tables(cfg, positions_bt, x_bth.dtype)
        new_cache = []
        for layer, layer_cache in zip(self.layers, kv_cache):
            x_bth, layer_cache = layer(x_bth, cos_btd, sin_btd, cache=layer_cache, cache_index=cache_index,
                                       key_mask_bs=key_mask_bs, attend_len=attend_len)
            new_cache.append(layer_cache)
        hidden_bth = self.norm(x_bth)
        if return_hidden:
            return hidden_bth, new_cache
        return hidden_bth @ self.head_weight_hv().astype(hidden_bth.dtype), new_cache

    def head_weight_hv(self):
        if self.cfg.tie_word_embeddings:
            return self.embed_tokens[...].T
        return self.lm_head[...]


# ------------------------------------------------------------------------------------------------
# Projections, shared by the cached path (modules) and the no-cache path (training, scoring)


_TARGET = threading.local()  # the backend being compiled for, when it is not the default one


@contextlib.contextmanager
def compiling_for(backend: str):
    """Trace the model as for `backend` ("cpu", "gpu", "tpu") whatever the default backend is:
    ahead-of-time compilation for a TPU topology from a CPU host (`coderl plan`) must not pick the
    XLA:CPU-only layouts below."""
    previous = getattr(_TARGET, "backend", None)
    _TARGET.backend = backend
    try:
        yield
    finally:
        _TARGET.backend = previous


def target_backend() -> str:
    return getattr(_TARGET, "backend", None) or jax.default_backend()


def fuse_projections() -> bool:
    """Whether q/k/v (and gate/up) are computed as one matmul over the concatenated weights.

    On XLA:CPU one matmul with a wider output beats two or three small ones (fewer kernel launches
    and thread-pool hand-offs per decode step). Elsewhere they stay separate, so that weights split
    over a tensor axis are never concatenated across shards.
    """
    return target_backend() == "cpu"


def scan_layers() -> bool:
    """Whether the forward runs its layers as one `lax.scan` over stacked weights (and, cached, a
    stacked KV cache) instead of a Python loop: prefill, decode, scoring and the train step. Off on
    XLA:CPU, where the unrolled layers are faster for small models; on GPU and TPU compile time
    then no longer grows with depth (one layer body however many layers)."""
    return target_backend() != "cpu"


def grouped_attention() -> bool:
    """Whether training/scoring attention runs the grouped kernel (`_grouped_attention`: the g query
    heads of a kv head as one matrix, hand-written backward) rather than kv heads repeated to n.
    XLA:CPU only; elsewhere the per-head layout, which a tensor axis over the query heads splits
    evenly whatever the number of kv heads."""
    return target_backend() == "cpu"


def decode_multiply_add() -> bool:
    """Whether a decode step's attention scores are written as head_dim explicit multiply-adds
    (XLA:CPU only, where they fuse into one elementwise loop and beat a batched dot) rather than
    one einsum. Elsewhere the einsum: the unrolled form puts head_dim x layers x unrolled steps x
    decode loops ops into the program, which for a deep model is more than XLA:GPU compiles in
    useful time."""
    return target_backend() == "cpu"


def project_qkv(x_h, weights, biases, cfg: ModelConfig):
    """x [..., h] -> q [..., n, d], k [..., k, d], v [..., k, d]; weights (q, k, v) stored [in, out],
    biases (q, k, v) or None. Fused, the weights are grouped per kv head, [h, k, (g + 2) * d]: the
    g query heads that share kv head j, then its key, then its value (shard-local when the kv
    heads are split)."""
    n, k, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    g, dt, lead = n // k, x_h.dtype, x_h.shape[:-1]
    if not fuse_projections():
        ys = [x_h @ w.astype(dt) for w in weights]
        if biases is not None:
            ys = [y + bias.astype(dt) for y, bias in zip(ys, biases)]
        return tuple(y.reshape(*lead, heads, d) for y, heads in zip(ys, (n, k, k)))
    widths = (g * d, d, d)
    w_hkc = jnp.concatenate([w.reshape(w.shape[0], k, c) for w, c in zip(weights, widths)], axis=2)
    y_kc = jnp.einsum("...h,hkc->...kc", x_h, w_hkc.astype(dt))
    if biases is not None:
        y_kc = y_kc + jnp.concatenate([bias.reshape(k, c) for bias, c in zip(biases, widths)], axis=1).astype(dt)
    q = y_kc[..., :g * d].reshape(*lead, n, d)
    return q, y_kc[..., g * d:(g + 1) * d], y_kc[..., (g + 1) * d:]


def gated_mlp(x_h, gate_hf, up_hf, down_fh):
    """SwiGLU: (silu(x @ gate) * (x @ up)) @ down; fused, gate and up are one matmul over their
    stack [h, 2, f] (shard-local when f is split), with a hand-written backward pass."""
    dt = x_h.dtype
    if fuse_projections():
        lead = x_h.shape[:-1]
        out_nh = _fused_gated_mlp(x_h.reshape(-1, x_h.shape[-1]), jnp.stack([gate_hf, up_hf], axis=1).astype(dt),
                                  down_fh.astype(dt))
        return out_nh.reshape(*lead, -1)
    gate_f, up_f = x_h @ gate_hf.astype(dt), x_h @ up_hf.astype(dt)
    return (jax.nn.silu(gate_f) * up_f) @ down_fh.astype(dt)


@jax.custom_vjp
def _fused_gated_mlp(x_nh, gate_up_hcf, down_fh):
    """x [n, h], gate and up stacked [h, 2, f], down [f, h] -> [n, h]. Autodiff of the stacked form
    would pad each half's gradient to [n, 2, f], add the two and transpose the sum; the backward
    below writes the stacked gradient in one pass."""
    return _fused_gated_mlp_fwd(x_nh, gate_up_hcf, down_fh)[0]


def _fused_gated_mlp_fwd(x_nh, gate_up_hcf, down_fh):
    gu_ncf = jnp.einsum("nh,hcf->ncf", x_nh, gate_up_hcf)
    out_nh = (jax.nn.silu(gu_ncf[:, 0]) * gu_ncf[:, 1]) @ down_fh
    return out_nh, (x_nh, gate_up_hcf, down_fh, gu_ncf)


def _fused_gated_mlp_bwd(residuals, dout_nh):
    x_nh, gate_up_hcf, down_fh, gu_ncf = residuals
    gate_nf, up_nf = gu_ncf[:, 0], gu_ncf[:, 1]
    sig_nf = jax.nn.sigmoid(gate_nf)
    act_nf = gate_nf * sig_nf
    dhid_nf = dout_nh @ down_fh.T
    d_down_fh = jnp.einsum("nf,nh->fh", act_nf * up_nf, dout_nh)
    d_gate_nf = dhid_nf * up_nf * sig_nf * (1 + gate_nf * (1 - sig_nf))  # silu'(z) = s(z) (1 + z (1 - s(z)))
    d_gu_ncf = jnp.stack([d_gate_nf, dhid_nf * act_nf], axis=1)
    d_x_nh = jnp.einsum("ncf,hcf->nh", d_gu_ncf, gate_up_hcf)
    d_w_hcf = jnp.einsum("nh,ncf->hcf", x_nh, d_gu_ncf)
    return d_x_nh, d_w_hcf, d_down_fh


_fused_gated_mlp.defvjp(_fused_gated_mlp_fwd, _fused_gated_mlp_bwd)


# ------------------------------------------------------------------------------------------------
# RoPE


def inv_frequencies(cfg: ModelConfig) -> np.ndarray:
    """Per-pair inverse frequencies [d/2], with Llama 3 scaling when configured (float64 numpy)."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    if cfg.rope_scaling is not None:
        _, factor, low, high, orig = cfg.rope_scaling
        low_wavelen, high_wavelen = orig / low, orig / high
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (orig / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        inv_freq = np.where(medium, smoothed, scaled)
    return inv_freq.astype(np.float32)


def rope_tables(cfg: ModelConfig, positions_bt, dtype):
    """cos/sin tables [b, t, d] (halves repeated, as in the HF rotate-half convention)."""
    inv_freq = jnp.asarray(inv_frequencies(cfg))
    freqs_btd2 = positions_bt.astype(jnp.float32)[..., None] * inv_freq
    emb_btd = jnp.concatenate([freqs_btd2, freqs_btd2], axis=-1)
    return jnp.cos(emb_btd).astype(dtype), jnp.sin(emb_btd).astype(dtype)


def causal_self_attention(q_btnd, k_btkd, v_btkd, key_mask_bs, mesh=None, attention: str = "auto"):
    """Attention without a cache (training, scoring): causal among the t tokens, keys restricted by
    `key_mask_bs` [b, t]. Returns [b, t, n*d]. Numerics are those of the cache path (scores in
    float32, divided by sqrt(d), masked to NEG_INF).

    For t >= 128 the queries are split in two halves and the first half scores only the first half
    of the keys, skipping the fully masked quarter of the causal square. On XLA:CPU the grouped
    kernel below (`_grouped_attention`). On TPU and GPU a blocked kernel that never holds the
    [t, t] scores (`blocked_attention`: splash on TPU, per shard of `mesh`; cuDNN on GPU) where the
    shapes allow; otherwise kv heads repeated to n and [b, n, t, d] operands, so that a tensor axis
    over the query heads splits every operand the same way.
    """
    b, t, n, d = q_btnd.shape
    kh = k_btkd.shape[2]
    g = n // kh
    if grouped_attention():
        q_bkrd = q_btnd.reshape(b, t, kh, g, d).transpose(0, 2, 1, 3, 4).reshape(b, kh, t * g, d)
        k_bksd, v_bksd = k_btkd.transpose(0, 2, 1, 3), v_btkd.transpose(0, 2, 1, 3)
        out_bkrd = _grouped_attention(q_bkrd, k_bksd, v_bksd, key_mask_bs, g)
        return out_bkrd.reshape(b, kh, t, g, d).transpose(0, 2, 1, 3, 4).reshape(b, t, n * d)
    kernel = blocked_attention.kernel_for(target_backend(), t, d, q_btnd.dtype, attention)
    if kernel == "splash":
        return blocked_attention.splash_attention(q_btnd, k_btkd, v_btkd, key_mask_bs, mesh)
    if kernel == "cudnn":
        return blocked_attention.cudnn_attention(q_btnd, k_btkd, v_btkd, key_mask_bs)
    dt = q_btnd.dtype
    q_bntd = q_btnd.transpose(0, 2, 1, 3)
    k_bnds = jnp.repeat(k_btkd, g, axis=2).transpose(0, 2, 3, 1)  # query head j uses kv head j // g
    v_bnsd = jnp.repeat(v_btkd, g, axis=2).transpose(0, 2, 1, 3)
    blocks = _causal_blocks(t)
    tb = t // blocks
    out_blocks = []
    for i in range(blocks):
        end = (i + 1) * tb  # queries [i*tb, end) see keys [0, end)
        scores_bnts = (q_bntd[:, :, i * tb:end] @ k_bnds[..., :end]).astype(jnp.float32) / math.sqrt(d)
        causal_ts = jnp.arange(end)[None, :] <= (i * tb + jnp.arange(tb))[:, None]
        mask_bts = causal_ts[None] & key_mask_bs[:, None, :end]
        scores_bnts = jnp.where(mask_bts[:, None], scores_bnts, NEG_INF)
        probs_bnts = jax.nn.softmax(scores_bnts, axis=-1).astype(dt)
        out_blocks.append(probs_bnts @ v_bnsd[:, :, :end])
    out_bntd = jnp.concatenate(out_blocks, axis=2) if blocks > 1 else out_blocks[0]
    return out_bntd.transpose(0, 2, 1, 3).reshape(b, t, n * d)


def _causal_blocks(t: int) -> int:
    return 2 if t >= 128 and t % 2 == 0 else 1


# The grouped kernel: per kv head, its g query heads are one matrix of t*g rows, row t*g + j being
# position t of query head j, so every product is a batched matmul over [b, kv heads] with g times
# more rows than per-head attention and no repeated keys or values (XLA:CPU runs a few tall
# products faster than many small per-head ones). The backward pass is written out from the
# saved probabilities: dP = dO V^T, dS = P (dP - rowsum(dO O)) / sqrt(d), dQ = dS K, dK = dS^T Q,
# dV = P^T dO, because autodiff of the softmax fused several extra elementwise passes into the
# products. docs/benchmarks.md has the update step's timings with and without this kernel.


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _grouped_attention(q_bkrd, k_bksd, v_bksd, key_mask_bs, g):
    return _grouped_attention_fwd(q_bkrd, k_bksd, v_bksd, key_mask_bs, g)[0]


def _row_blocks(q_rows: int, g: int):
    """(query row slice, number of keys) per causal block."""
    t = q_rows // g
    blocks = _causal_blocks(t)
    tb = t // blocks
    return [(slice(i * tb * g, (i + 1) * tb * g), (i + 1) * tb) for i in range(blocks)]


def _grouped_attention_fwd(q_bkrd, k_bksd, v_bksd, key_mask_bs, g):
    dt, d = q_bkrd.dtype, q_bkrd.shape[-1]
    probs, outs = [], []
    for rows, end in _row_blocks(q_bkrd.shape[2], g):
        scores_bkrs = jnp.einsum("bkrd,bksd->bkrs", q_bkrd[:, :, rows], k_bksd[:, :, :end]).astype(jnp.float32)
        position_r = jnp.repeat(jnp.arange(rows.start // g, rows.stop // g), g)
        mask_brs = (jnp.arange(end)[None, :] <= position_r[:, None])[None] & key_mask_bs[:, None, :end]
        scores_bkrs = jnp.where(mask_brs[:, None], scores_bkrs / math.sqrt(d), NEG_INF)
        probs_bkrs = jax.nn.softmax(scores_bkrs, axis=-1).astype(dt)
        probs.append(probs_bkrs)
        outs.append(jnp.einsum("bkrs,bksd->bkrd", probs_bkrs, v_bksd[:, :, :end]))
    out_bkrd = jnp.concatenate(outs, axis=2) if len(outs) > 1 else outs[0]
    return out_bkrd, (q_bkrd, k_bksd, v_bksd, out_bkrd, probs)  # the mask is already in the probabilities


def _grouped_attention_bwd(g, residuals, dout_bkrd):
    q_bkrd, k_bksd, v_bksd, out_bkrd, probs = residuals
    dt, d = q_bkrd.dtype, q_bkrd.shape[-1]
    delta_bkr = jnp.sum(dout_bkrd.astype(jnp.float32) * out_bkrd.astype(jnp.float32), axis=-1)
    dq, dk_bksd, dv_bksd = [], None, None
    for (rows, end), probs_bkrs in zip(_row_blocks(q_bkrd.shape[2], g), probs):
        dout = dout_bkrd[:, :, rows]
        dprobs_bkrs = jnp.einsum("bkrd,bksd->bkrs", dout, v_bksd[:, :, :end]).astype(jnp.float32)
        dscores_bkrs = (probs_bkrs.astype(jnp.float32) * (dprobs_bkrs - delta_bkr[:, :, rows, None])
                        / math.sqrt(d)).astype(dt)
        dq.append(jnp.einsum("bkrs,bksd->bkrd", dscores_bkrs, k_bksd[:, :, :end]))
        dk = jnp.einsum("bkrs,bkrd->bksd", dscores_bkrs, q_bkrd[:, :, rows])
        dv = jnp.einsum("bkrs,bkrd->bksd", probs_bkrs, dout)
        if dk_bksd is not None:  # the earlier blocks saw a prefix of these keys
            pad = [(0, 0), (0, 0), (0, end - dk_bksd.shape[2]), (0, 0)]
            dk, dv = dk + jnp.pad(dk_bksd, pad), dv + jnp.pad(dv_bksd, pad)
        dk_bksd, dv_bksd = dk, dv
    dq_bkrd = jnp.concatenate(dq, axis=2) if len(dq) > 1 else dq[0]
    return dq_bkrd, dk_bksd, dv_bksd, None


_grouped_attention.defvjp(_grouped_attention_fwd, _grouped_attention_bwd)


def apply_rope(x_btnd, cos_btd, sin_btd):
    half = x_btnd.shape[-1] // 2
    rotated = jnp.concatenate([-x_btnd[..., half:], x_btnd[..., :half]], axis=-1)
    return x_btnd * cos_btd[:, :, None, :] + rotated * sin_btd[:, :, None, :]


# ------------------------------------------------------------------------------------------------
# Functional interface


@functools.lru_cache(maxsize=32)
def _graph_and_abstract_state(cfg: ModelConfig):
    model = nnx.eval_shape(lambda: Transformer(cfg, nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    return graphdef, state


def param_shapes(cfg: ModelConfig) -> dict:
    """The parameter pytree as jax.ShapeDtypeStruct leaves (no memory allocated)."""
    _, state = _graph_and_abstract_state(cfg)
    return nnx.to_pure_dict(state)


def init_params(cfg: ModelConfig, rng: jax.Array | int = 0) -> dict:
    """Random parameters (normal, std 0.02; norms at 1) as a plain nested dict of arrays."""
    seed = rng if isinstance(rng, int) else int(jax.random.randint(rng, (), 0, 2**31 - 1))
    model = Transformer(cfg, nnx.Rngs(seed))
    return nnx.to_pure_dict(nnx.state(model))


def bind(cfg: ModelConfig, params: dict) -> Transformer:
    """An NNX Transformer view over `params` (cheap; used inside jitted functions)."""
    return _merge(*_graph_and_abstract_state(cfg), params)


def _merge(graphdef, abstract, params: dict):
    """The module of `graphdef` over the arrays of `params` (a pure dict shaped like `abstract`)."""
    state = jax.tree.map(lambda x: x, abstract)  # a fresh State to fill
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


class ForwardOut(NamedTuple):
    logits_btv: jax.Array  # or hidden_bth when return_hidden
    kv_cache: list | None


def forward(params: dict, cfg: ModelConfig, tokens_bt, positions_bt, *, mask_bt=None, kv_cache=None,
            cache_index=None, key_mask_bs=None, attend_len: int | None = None,
            return_hidden: bool = False, remat: bool = False, mesh=None) -> ForwardOut:
    """Pure forward pass.

    Without a cache: causal attention among `tokens_bt`, keys restricted by `mask_bt` (false at
    padding). With a cache: see the module docstring; `key_mask_bs` must already be true at the
    slots being written. Returns logits [b, t, v] (compute dtype), or the final hidden states
    [b, t, h] when `return_hidden` (for chunked log-probs: see `head_weight`). `remat` (training,
    no cache) recomputes each decoder layer in the backward pass instead of keeping its activations.
    `mesh` (no cache): the mesh the program runs on, for attention kernels that run per shard
    (splash on TPU, see `blocked_attention`).
    """
    if kv_cache is None:
        if mask_bt is None:
            mask_bt = jnp.ones(tokens_bt.shape, bool)
        out = _forward_no_cache(params, cfg, tokens_bt, positions_bt, mask_bt.astype(bool),
                                return_hidden=return_hidden, remat=remat, mesh=mesh)
        return ForwardOut(out, None)
    if cache_index is None or key_mask_bs is None:
        raise ValueError("forward with a kv_cache needs cache_index and key_mask_bs")
    if "stacked_layers" in params:
        out, cache = _forward_cached_scan(params, cfg, tokens_bt, positions_bt, kv_cache, cache_index=cache_index,
                                          key_mask_bs=key_mask_bs, attend_len=attend_len, return_hidden=return_hidden)
        return ForwardOut(out, cache)
    model = bind(cfg, params)
    out, cache = model(tokens_bt, positions_bt, kv_cache=kv_cache, cache_index=cache_index,
                       key_mask_bs=key_mask_bs, attend_len=attend_len, return_hidden=return_hidden)
    return ForwardOut(out, cache)


# ------------------------------------------------------------------------------------------------
# Cached path with the layers scanned (scan_layers): one layer body in the program


def stack_layers(params: dict, cfg: ModelConfig) -> dict:
    """`params` with the per-layer dicts replaced by one `stacked_layers` pytree of [L, ...] arrays
    (a copy of the layer weights). `forward` with a stacked cache (`init_kv_cache(stacked=True)`)
    then scans over the layers."""
    out = {k: v for k, v in params.items() if k != "layers"}
    out["stacked_layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *[params["layers"][i]
                                                                       for i in range(cfg.num_layers)])
    return out


@functools.lru_cache(maxsize=32)
def _block_graph_and_abstract_state(cfg: ModelConfig):
    return nnx.split(nnx.eval_shape(lambda: Block(cfg, nnx.Rngs(0))))


def _forward_cached_scan(params: dict, cfg: ModelConfig, tokens_bt, positions_bt, kv_cache, *, cache_index,
                         key_mask_bs, attend_len, return_hidden):
    graphdef, abstract = _block_graph_and_abstract_state(cfg)
    x_bth = jnp.take(params["embed_tokens"], tokens_bt, axis=0).astype(cfg.jnp_dtype)
    cos_btd, sin_btd = rope_tables(cfg, positions_bt, x_bth.dtype)
    (ck_lbkds, cv_lbksd), = kv_cache

    def body(carry, xs):
        x_bth, ck, cv = carry
        layer_params, layer = xs
        block = _merge(graphdef, abstract, layer_params)
        x_bth, (ck, cv, _) = block(x_bth, cos_btd, sin_btd, cache=(ck, cv, layer), cache_index=cache_index,
                                   key_mask_bs=key_mask_bs, attend_len=attend_len)
        return (x_bth, ck, cv), None

    (x_bth, ck_lbkds, cv_lbksd), _ = jax.lax.scan(
        body, (x_bth, ck_lbkds, cv_lbksd), (params["stacked_layers"], jnp.arange(cfg.num_layers)))
    hidden_bth = _rms_norm(x_bth, params["norm"]["weight"], cfg.rms_norm_eps)
    if not return_hidden:
        hidden_bth = hidden_bth @ head_weight(params, cfg).astype(hidden_bth.dtype)
    return hidden_bth, [(ck_lbkds, cv_lbksd)]


# ------------------------------------------------------------------------------------------------
# Training / scoring path (no cache): the same math as the modules above, written functionally on
# the params dict with the activations flattened to n = b*t rows, so that every projection is a
# plain 2-D matmul [n, in] @ [in, out]. On XLA:CPU the 3-D form made the weight gradients
# (contracting over both b and t) materialise transposed copies of the activations.


def _rms_norm(x, weight, eps):
    dtype = x.dtype
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return weight.astype(dtype) * x32.astype(dtype)


@jax.custom_vjp
def _rope_no_cache(x_btnd, cos_btd, sin_btd):
    """`apply_rope` with a hand-written backward pass: the inverse rotation of the cotangent,
    dx = dy * cos + rotate_half^T(dy * sin), one elementwise pass (autodiff of the concatenate
    gives slices and zero pads of full size). cos/sin are constants of the positions: no gradient."""
    return apply_rope(x_btnd, cos_btd, sin_btd)


def _rope_no_cache_fwd(x_btnd, cos_btd, sin_btd):
    return apply_rope(x_btnd, cos_btd, sin_btd), (cos_btd, sin_btd)


def _rope_no_cache_bwd(residuals, dy_btnd):
    cos_btd, sin_btd = residuals
    half = dy_btnd.shape[-1] // 2
    ds_btnd = dy_btnd * sin_btd[:, :, None, :]
    return (dy_btnd * cos_btd[:, :, None, :] + jnp.concatenate([ds_btnd[..., half:], -ds_btnd[..., :half]], axis=-1),
            jnp.zeros_like(cos_btd), jnp.zeros_like(sin_btd))


_rope_no_cache.defvjp(_rope_no_cache_fwd, _rope_no_cache_bwd)


def _rope_tables_once(cfg: ModelConfig, positions_bt, dtype):
    """`rope_tables` for the no-cache path. On XLA:CPU they are computed in the body of a while
    loop that runs once (a trip count known only at run time), so that they are buffers read by
    every layer: left to fusion, XLA evaluated cos and sin again for every head inside each layer's
    RoPE fusions, forward and backward, which made the fusions that assemble the qkv gradient a
    large share of the update step. The loop's initial value is the tables themselves, so any trip
    count gives the same result."""
    tables = rope_tables(cfg, positions_bt, dtype)
    if target_backend() != "cpu":
        return tables
    trips = (jnp.max(positions_bt) >= 0).astype(jnp.int32)
    _, cos_btd, sin_btd = jax.lax.while_loop(
        lambda carry: carry[0] < trips, lambda carry: (carry[0] + 1, *rope_tables(cfg, positions_bt, dtype)),
        (jnp.int32(0), *tables))
    return cos_btd, sin_btd


def _layer_no_cache(lp: dict, cfg: ModelConfig, x_nh, cos_btd, sin_btd, key_mask_bs, mesh=None):
    b, t = key_mask_bs.shape
    n, d, eps = cfg.num_heads, cfg.head_dim, cfg.rms_norm_eps
    dt = x_nh.dtype
    attn = lp["self_attn"]
    h_nh = _rms_norm(x_nh, lp["input_layernorm"]["weight"], eps)

    biases = [attn[name + "_bias"] for name in "qkv"] if cfg.attention_bias else None
    q_nnd, k_nkd, v_nkd = project_qkv(h_nh, [attn[name + "_proj"] for name in "qkv"], biases, cfg)
    q_btnd, k_btkd, v_btkd = (y.reshape(b, t, *y.shape[1:]) for y in (q_nnd, k_nkd, v_nkd))
    if cfg.qk_norm:
        q_btnd = _rms_norm(q_btnd, attn["q_norm"]["weight"], eps)
        k_btkd = _rms_norm(k_btkd, attn["k_norm"]["weight"], eps)
    q_btnd = _rope_no_cache(q_btnd, cos_btd, sin_btd)
    k_btkd = _rope_no_cache(k_btkd, cos_btd, sin_btd)
    out_nh = causal_self_attention(q_btnd, k_btkd, v_btkd, key_mask_bs, mesh, cfg.attention).reshape(b * t, n * d)
    x_nh = x_nh + out_nh @ attn["o_proj"].astype(dt)
    mlp = lp["mlp"]
    h_nh = _rms_norm(x_nh, lp["post_attention_layernorm"]["weight"], eps)
    return x_nh + gated_mlp(h_nh, mlp["gate_proj"], mlp["up_proj"], mlp["down_proj"])


def _forward_no_cache(params: dict, cfg: ModelConfig, tokens_bt, positions_bt, key_mask_bs, *,
                      return_hidden: bool, remat: bool, mesh=None):
    b, t = tokens_bt.shape
    x_nh = jnp.take(params["embed_tokens"], tokens_bt.reshape(b * t), axis=0).astype(cfg.jnp_dtype)
    cos_btd, sin_btd = _rope_tables_once(cfg, positions_bt, x_nh.dtype)
    layer_fn = functools.partial(_layer_no_cache, cfg=cfg, mesh=mesh)
    if remat:  # recompute each layer in the backward pass instead of keeping its activations
        layer_fn = jax.checkpoint(layer_fn)
    if scan_layers() or "stacked_layers" in params:
        # one layer body in the program (GPU/TPU): compile time does not grow with depth. The
        # per-layer weights are stacked inside the program (a copy; their gradient is unstacked)
        stacked = params["stacked_layers"] if "stacked_layers" in params else stack_layers(params, cfg)["stacked_layers"]

        def body(x_nh, lp):
            return layer_fn(lp, x_nh=x_nh, cos_btd=cos_btd, sin_btd=sin_btd, key_mask_bs=key_mask_bs), None

        x_nh, _ = jax.lax.scan(body, x_nh, stacked)
    else:
        for i in range(cfg.num_layers):
            x_nh = layer_fn(params["layers"][i], x_nh=x_nh, cos_btd=cos_btd, sin_btd=sin_btd,
                            key_mask_bs=key_mask_bs)
    hidden_nh = _rms_norm(x_nh, params["norm"]["weight"], cfg.rms_norm_eps)
    if return_hidden:
        return hidden_nh.reshape(b, t, -1)
    return (hidden_nh @ head_weight(params, cfg).astype(hidden_nh.dtype)).reshape(b, t, -1)


def head_weight(params: dict, cfg: ModelConfig):
    """The output projection [h, v] (the transposed embedding when tied)."""
    if cfg.tie_word_embeddings:
        return params["embed_tokens"].T
    return params["lm_head"]


def init_kv_cache(cfg: ModelConfig, batch: int, num_slots: int, dtype=None, *, stacked: bool = False) -> list:
    """Zeroed cache: a (k_bkds, v_bksd) pair per layer (keys stored with the slots minor), or with
    `stacked` one pair [(k_lbkds, v_lbksd)] holding every layer (for `stack_layers` params). Either
    way the batch is axis -4 and the slots are axis -1 of keys, -2 of values."""
    dtype = dtype or cfg.jnp_dtype
    b, s, k, d, n = batch, num_slots, cfg.num_kv_heads, cfg.head_dim, cfg.num_layers
    if stacked:
        return [(jnp.zeros((n, b, k, d, s), dtype), jnp.zeros((n, b, k, s, d), dtype))]
    return [(jnp.zeros((b, k, d, s), dtype), jnp.zeros((b, k, s, d), dtype)) for _ in range(n)]


def kv_cache_bytes(cfg: ModelConfig, batch: int, num_slots: int, dtype=jnp.float32) -> int:
    return 2 * cfg.num_layers * batch * num_slots * cfg.num_kv_heads * cfg.head_dim * jnp.dtype(dtype).itemsize
