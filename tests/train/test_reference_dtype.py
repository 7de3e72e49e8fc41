"""The reference policy in the compute dtype (`loss.ref_dtype="auto"`): half the memory of float32
weights when the compute dtype is bfloat16, and the same reference log-probs, because the forward
casts every weight to the compute dtype before using it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import tiny, transformer
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, TrainConfig
from coderl_jax.train.programs import build_scoring, reference_dtype, reference_params


def config(**loss):
    return TrainConfig(model="tiny-random", dtype="bfloat16", data=DataConfig(train_path="x"),
                       loss=LossConfig(**loss))


def test_reference_in_the_compute_dtype_scores_the_same():
    cfg = config()
    model_cfg = dataclasses.replace(tiny.tiny_config(), dtype="bfloat16")
    params = transformer.init_params(model_cfg, 0)
    ref = reference_params(cfg, params)
    assert reference_dtype(cfg) == "bfloat16"
    assert {x.dtype for x in jax.tree.leaves(ref)} == {jnp.dtype("bfloat16")}
    assert sum(x.nbytes for x in jax.tree.leaves(ref)) * 2 == sum(x.nbytes for x in jax.tree.leaves(params))
    rng = np.random.RandomState(0)
    batch = {"tokens": jnp.asarray(rng.randint(0, model_cfg.vocab_size, (4, 24)), jnp.int32),
             "positions": jnp.tile(jnp.arange(24, dtype=jnp.int32), (4, 1)), "attn_mask": jnp.ones((4, 24), bool)}
    score = build_scoring(cfg, model_cfg)
    want, got = score(params, batch), score(ref, batch)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # a float32 reference is a copy, not the trainer's buffers (the update donates those)
    f32 = reference_params(config(ref_dtype="float32"), params)
    assert all(a is not b and a.dtype == b.dtype for a, b in zip(jax.tree.leaves(f32), jax.tree.leaves(params)))


def test_bad_reference_dtype_is_an_error():
    with pytest.raises(ValueError, match="loss.ref_dtype"):
        config(ref_dtype="float16").validate()
