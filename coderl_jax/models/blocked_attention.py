"""Blocked causal attention for training and scoring on accelerators: no `[L, L]` scores in memory.

The no-cache forward (`transformer.forward` without a KV cache: the update and old/reference
scoring) attends over whole packed rows. Written as plain XLA, each layer materialises float32
scores `[rows, heads, L, L]`: about 3 GiB a layer for a 7B model's rows at 5k tokens, 10 GiB at
9k. The kernels here keep only tiles of the scores on chip:

    TPU   Pallas splash attention (`jax.experimental.pallas.ops.tpu.splash_attention`): a causal
          mask, padding expressed as segment ids (real tokens 1, padding 0), run per shard of the
          mesh under `shard_map` (a Pallas kernel is not partitioned by the compiler): rows over
          the batch axes, heads over `tensor`.
    GPU   `jax.nn.dot_product_attention(implementation="cudnn")` (cuDNN's fused flash attention),
          when the compute dtype is 16-bit (a float32 model keeps the XLA kernel); padding as
          sequence lengths, each row rotated so that its real tokens come first.

Numerics: scores in float32 divided by sqrt(head_dim), softmax over the causal keys whose mask
is true, as the XLA kernel. Rows' padding positions differ (the XLA kernel gives a left-padding
query a uniform average, splash its own padding segment); no loss reads them and no real token
attends to them, so log-probs, losses and gradients of real tokens agree.

`pallas_interpret()` runs the TPU kernel in Pallas' interpreter, which lets the CPU test suite check
it (and its gradient, and the sharded call) against the XLA kernel.
"""

from __future__ import annotations

import contextlib
import math
import threading

import jax
import jax.numpy as jnp

_STATE = threading.local()
MIN_BLOCK = 128  # splash tiles are multiples of the TPU's 128 lanes
MAX_BLOCK = 512


@contextlib.contextmanager
def pallas_interpret():
    """Run Pallas kernels traced inside the block in the interpreter (any backend, slow)."""
    previous = getattr(_STATE, "interpret", False)
    _STATE.interpret = True
    try:
        yield
    finally:
        _STATE.interpret = previous


def interpreting() -> bool:
    return getattr(_STATE, "interpret", False)


def splash_fits(t: int, d: int) -> bool:
    """Whether rows of `t` tokens with head_dim `d` tile into splash blocks (else the XLA kernel)."""
    return t % MIN_BLOCK == 0 and (d % MIN_BLOCK == 0 or interpreting())


def _block(t: int) -> int:
    """The largest power-of-two tile between MIN_BLOCK and MAX_BLOCK that divides t."""
    b = MAX_BLOCK
    while t % b:
        b //= 2
    return b


def _splash_kernel(heads: int, t: int, interpret: bool):
    """Built where it is traced: the kernel holds its mask's block tables as arrays of that trace."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    mask = sm.MultiHeadMask([sm.CausalMask((t, t)) for _ in range(heads)])
    blk = _block(t)
    sizes = sk.BlockSizes(block_q=blk, block_kv=blk, block_kv_compute=blk, block_q_dkv=blk, block_kv_dkv=blk,
                          block_kv_dkv_compute=blk, block_q_dq=blk, block_kv_dq=blk)
    return sk.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1, interpret=interpret)


def _splash_local(q_bntd, k_bntd, v_bntd, key_mask_bt):
    """Splash attention over local rows and heads: [b, n, t, d] each (kv heads already repeated)."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

    b, n, t, d = q_bntd.shape
    kernel = _splash_kernel(n, t, interpreting())
    segments_bt = key_mask_bt.astype(jnp.int32)
    q_bntd = q_bntd * jnp.asarray(1.0 / math.sqrt(d), q_bntd.dtype)

    def one_row(q, k, v, seg):
        return kernel(q, k, v, segment_ids=sk.SegmentIds(q=seg, kv=seg))

    return jax.vmap(one_row)(q_bntd, k_bntd, v_bntd, segments_bt)


def splash_attention(q_btnd, k_btkd, v_btkd, key_mask_bs, mesh=None):
    """Causal attention of `transformer.causal_self_attention` by the splash kernel: q [b, t, n, d],
    k/v [b, t, k, d], key mask [b, t] -> [b, t, n*d]. With a `mesh` the kernel runs per shard: rows
    over the mesh's batch axes, heads over `tensor` when the head count splits evenly."""
    from jax.sharding import PartitionSpec as P

    from coderl_jax.parallel.mesh import BATCH_AXES

    b, t, n, d = q_btnd.shape
    g = n // k_btkd.shape[2]
    q_bntd = q_btnd.transpose(0, 2, 1, 3)
    k_bntd = jnp.repeat(k_btkd, g, axis=2).transpose(0, 2, 1, 3)  # query head j uses kv head j // g
    v_bntd = jnp.repeat(v_btkd, g, axis=2).transpose(0, 2, 1, 3)
    if mesh is None:
        out_bntd = _splash_local(q_bntd, k_bntd, v_bntd, key_mask_bs)
    else:
        rows = tuple(a for a in BATCH_AXES if a in mesh.shape)
        if b % math.prod(mesh.shape[a] for a in rows):
            rows = ()
        heads = "tensor" if "tensor" in mesh.shape and n % mesh.shape["tensor"] == 0 else None
        spec = P(rows or None, heads, None, None)
        out_bntd = jax.shard_map(_splash_local, mesh=mesh, in_specs=(spec, spec, spec, P(rows or None, None)),
                                 out_specs=spec, check_vma=False)(q_bntd, k_bntd, v_bntd, key_mask_bs)
    return out_bntd.transpose(0, 2, 1, 3).reshape(b, t, n * d)


def cudnn_fits(dtype) -> bool:
    return jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def cudnn_attention(q_btnd, k_btkd, v_btkd, key_mask_bs, *, implementation: str = "cudnn"):
    """Causal attention by cuDNN's fused kernel (GPU, 16-bit operands): q [b, t, n, d], k/v
    [b, t, k, d] (grouped heads native), key mask [b, t] -> [b, t, n*d].

    cuDNN takes padding only as sequence lengths (real tokens first, then padding), and a packed
    row is [left padding][prompt][response][right padding]. Each row is rotated left by its
    left padding, so that its real tokens come first in the same order (causal attention among
    them is unchanged), attended with `query_seq_lengths` = `key_value_seq_lengths` = its real
    token count, and rotated back. An all-padding row counts one token, so that no query row is
    empty. (`implementation="xla"` runs the same path with XLA's kernel: the CPU tests.)"""
    b, t, n, d = q_btnd.shape
    start_b = jnp.argmax(key_mask_bs, axis=1).astype(jnp.int32)  # the first real token (0 if none)
    length_b = jnp.maximum(jnp.sum(key_mask_bs, axis=1), 1).astype(jnp.int32)
    cols = jnp.arange(t, dtype=jnp.int32)[None]
    take = lambda x, idx_bt: jnp.take_along_axis(x, idx_bt[:, :, None, None], axis=1)  # noqa: E731
    forward_bt = (cols + start_b[:, None]) % t
    q_r, k_r, v_r = (take(x, forward_bt) for x in (q_btnd, k_btkd, v_btkd))
    out_r = jax.nn.dot_product_attention(q_r, k_r, v_r, is_causal=True, scale=1.0 / math.sqrt(d),
                                         query_seq_lengths=length_b, key_value_seq_lengths=length_b,
                                         implementation=implementation)
    out_btnd = take(out_r, (cols - start_b[:, None]) % t)
    return out_btnd.reshape(b, t, n * d)


def kernel_for(backend: str, t: int, d: int, dtype, choice: str = "auto") -> str:
    """"splash", "cudnn" or "xla": the no-cache attention kernel for rows of `t` tokens
    (`choice`: the model config's `attention`, "xla" forcing the plain kernel)."""
    if choice == "xla":
        return "xla"
    if backend == "tpu" and splash_fits(t, d):
        return "splash"
    if backend == "gpu" and cudnn_fits(dtype):
        return "cudnn"
    return "xla"

