"""Sharded forward passes on 8 simulated CPU devices; run by test_sharding.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the flag must be set before JAX starts).

Not collected by the normal test run (its name does not start with test_).
"""

from __future__ import annotations

import collections
import functools

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from coderl_jax.models import hf_io, sharding, transformer
from coderl_jax.models.config import ModelConfig
from coderl_jax.parallel import SAMPLE_RULES, TRAIN_RULES, batch_sharding, make_mesh
from hf_fixtures import random_params  # tests/models is on PYTHONPATH (see test_sharding.py)

MESHES = [(8, 1, 1), (1, 8, 1), (2, 2, 2), (1, 2, 4)]  # (data, fsdp, tensor)
CFG = ModelConfig(family="qwen3", vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=16, qk_norm=True, attention_bias=True)
TIED = ModelConfig(family="qwen2", vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2,
                   num_heads=4, num_kv_heads=2, head_dim=16, attention_bias=True, tie_word_embeddings=True)
TOL = 1e-5


def setup_module():
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"


def batch(b=8, t=16):
    rng = np.random.RandomState(0)
    pads = rng.randint(0, t // 2, b)
    mask = np.arange(t)[None] >= pads[:, None]
    tokens = np.where(mask, rng.randint(0, 512, (b, t)), 0).astype(np.int32)
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0).astype(np.int32)
    return tokens, mask, positions


@functools.lru_cache(maxsize=None)
def forward_fn(cfg):
    return jax.jit(lambda p, t, q, m: transformer.forward(p, cfg, t, q, mask_bt=m).logits_btv)


def logits(cfg, params, mesh=None):
    tokens, mask, positions = batch()
    if mesh is not None:
        tokens, mask, positions = (jax.device_put(x, batch_sharding(mesh, x.shape)) for x in (tokens, mask, positions))
    return forward_fn(cfg)(params, tokens, positions, mask)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """cfg -> (HF dir, single-device reference logits)."""
    out = {}
    for cfg in (CFG, TIED):
        params = random_params(cfg)
        path = hf_io.save_hf(cfg, params, tmp_path_factory.mktemp(cfg.family) / "hf")
        single = jax.tree.map(lambda x: jax.device_put(x, jax.devices()[0]), params)
        out[cfg] = (path, np.asarray(logits(cfg, single)))
    return out


@pytest.fixture
def reads(monkeypatch):
    """Count elements read from the safetensors files, per tensor, by wrapping the slice reader."""
    counts = collections.defaultdict(list)
    original = hf_io._read_slice

    def counting(reader, name, index, transposed):
        out = original(reader, name, index, transposed)
        counts[name].append(out.size)
        return out

    monkeypatch.setattr(hf_io, "_read_slice", counting)
    return counts


@pytest.mark.parametrize("rules_name", ["train", "sample"])
@pytest.mark.parametrize("shape", MESHES, ids=lambda s: "x".join(map(str, s)))
def test_sharded_forward_equals_single_device(model, reads, shape, rules_name):
    rules = TRAIN_RULES if rules_name == "train" else SAMPLE_RULES
    mesh = make_mesh(*shape)
    path, ref = model[CFG]
    cfg, params = hf_io.load_hf(path, mesh=mesh, rules=rules)
    q = params["layers"][0]["self_attn"]["q_proj"]  # [h, n*d]
    data, fsdp, tensor = shape
    want_q = P("fsdp" if fsdp > 1 and rules_name == "train" else None, "tensor" if tensor > 1 else None)
    assert q.sharding.spec == want_q
    assert q.addressable_shards[0].data.shape == (64 // (fsdp if rules_name == "train" else 1), 64 // tensor)
    if tensor == 4:  # 2 kv heads cannot be split 4 ways: replicated (never split mid-head)
        assert params["layers"][0]["self_attn"]["k_proj"].sharding.spec[1] is None
    # each distinct slice is read once: the whole checkpoint is read exactly once in total,
    # and a sharded tensor is never read whole by a device
    assert sum(map(sum, reads.values())) == cfg.num_params()
    if want_q != P(None, None):
        assert max(reads["model.layers.0.self_attn.q_proj.weight"]) < q.size

    out = logits(cfg, params, mesh)
    np.testing.assert_allclose(np.asarray(out), ref, atol=TOL, rtol=0)


def test_tied_model_and_reshard_to_sampling_layout(model):
    mesh = make_mesh(2, 2, 2)
    path, ref = model[TIED]
    cfg, params = hf_io.load_hf(path, mesh=mesh, rules=TRAIN_RULES)
    assert params["embed_tokens"].sharding.spec == P("tensor", "fsdp")
    sampled = sharding.shard_params(params, cfg, mesh, SAMPLE_RULES)
    assert sampled["embed_tokens"].sharding.spec == P("tensor", None)
    np.testing.assert_allclose(np.asarray(logits(cfg, sampled, mesh)), ref, atol=TOL, rtol=0)


def test_prefill_with_sharded_kv_cache(model):
    """The cache path under the sampling layout: logits of a prefill equal the cache-free forward."""
    mesh = make_mesh(2, 2, 2)
    path, ref = model[CFG]
    cfg, params = hf_io.load_hf(path, mesh=mesh, rules=SAMPLE_RULES)
    tokens, mask, positions = batch()
    b, t = tokens.shape
    slots = t + 8
    k_sharding, v_sharding = sharding.kv_cache_sharding(cfg, mesh, b, slots)
    assert k_sharding.spec == P(("data", "fsdp"), "tensor", None, None)
    assert v_sharding.spec == P(("data", "fsdp"), "tensor", None, None)
    cache = [(jax.device_put(kc, k_sharding), jax.device_put(vc, v_sharding))
             for kc, vc in transformer.init_kv_cache(cfg, b, slots)]
    cache_sharding = k_sharding
    key_mask = np.concatenate([mask, np.zeros((b, slots - t), bool)], axis=1)

    @jax.jit
    def prefill(params, cache, tokens, positions, key_mask):
        return transformer.forward(params, cfg, tokens, positions, kv_cache=cache, cache_index=0,
                                   key_mask_bs=key_mask)

    out = prefill(params, cache, tokens, positions, key_mask)
    assert out.kv_cache[0][0].sharding.is_equivalent_to(cache_sharding, 4)
    # padding rows attend to nothing, so only the real tokens' logits are comparable
    np.testing.assert_allclose(np.asarray(out.logits_btv)[mask], ref[mask], atol=TOL, rtol=0)


def test_sampling_copy_has_the_sampling_layout_and_samples_like_one_device(model):
    """The loop's reshard program: the copy is laid out by the sampling rules in `rollout.dtype`, and
    greedy tokens sampled from it on the mesh equal those of a single-device sampler."""
    from coderl_jax.parallel import BATCH_AXES
    from coderl_jax.sampling.sampler import Sampler, SamplingParams
    from coderl_jax.train.config import RolloutConfig, TrainConfig
    from coderl_jax.train.programs import build_reshard

    mesh = make_mesh(2, 2, 2)
    path, _ = model[CFG]
    cfg, params = hf_io.load_hf(path, mesh=mesh, rules=TRAIN_RULES)
    copy = build_reshard(TrainConfig(), cfg, mesh)(params)  # rollout.dtype "auto": float32 on CPU
    want = sharding.param_shardings(cfg, mesh, sharding.rules_for(cfg, "sample"))
    pairs = list(zip(jax.tree.leaves(copy), jax.tree.leaves(want)))
    assert pairs and all(x.sharding.is_equivalent_to(s, x.ndim) for x, s in pairs)
    assert {x.dtype for x in jax.tree.leaves(copy)} == {np.dtype("float32")}
    assert any("fsdp" in str(x.sharding.spec) for x in jax.tree.leaves(params))  # the trainer's layout differs
    assert not any("fsdp" in str(x.sharding.spec) for x in jax.tree.leaves(copy))
    half = build_reshard(TrainConfig(rollout=RolloutConfig(dtype="bfloat16")), cfg, mesh)(params)
    assert {x.dtype for x in jax.tree.leaves(half)} == {jax.numpy.dtype("bfloat16")}

    prompts = [[3, 14, 15, 92, 6], [5, 35, 8], [97, 93, 2, 38], [46, 26, 43, 38, 32, 7]]
    sp = SamplingParams(n=2, max_new_tokens=6, temperature=0.0, seed=0)
    on_mesh = Sampler(cfg, copy, mesh=mesh, data_axes=BATCH_AXES).generate(prompts, sp)
    single_cfg, single_params = hf_io.load_hf(path)
    alone = Sampler(single_cfg, single_params).generate(prompts, sp)
    assert [[c.token_ids for c in g] for g in on_mesh] == [[c.token_ids for c in g] for g in alone]
    assert all(len(c.token_ids) > 0 for g in alone for c in g)
    # through refilled rows, each data shard refilling its own (4 shards x 2 rows for 4 x 4 sequences)
    sp4 = SamplingParams(n=4, max_new_tokens=6, temperature=0.0, seed=0)
    refill = Sampler(cfg, copy, mesh=mesh, data_axes=BATCH_AXES, slots=8).generate(prompts, sp4)
    assert [[c.token_ids for c in g] for g in refill] == [[c.token_ids for c in g] for g in
                                                            Sampler(single_cfg, single_params).generate(prompts, sp4)]

    # on GPU/TPU the copy holds its layers stacked for the sampler's layer scan (no re-stacking
    # per call), each stacked weight laid out as one layer's weight with the layer axis whole
    f32 = TrainConfig(rollout=RolloutConfig(dtype="float32"))
    jax.clear_caches()
    try:
        with transformer.compiling_for("gpu"):
            stacked = build_reshard(f32, cfg, mesh, backend="gpu")(params)
            assert "stacked_layers" in stacked and "layers" not in stacked
            layer0 = want["layers"][0]
            for path, leaf in jax.tree_util.tree_leaves_with_path(stacked["stacked_layers"]):
                one = functools.reduce(lambda t, k: t[k.key], path, layer0)
                assert leaf.shape[0] == cfg.num_layers and leaf.sharding.spec == P(None, *one.spec)
            on_gpu_layout = Sampler(cfg, stacked, mesh=mesh, data_axes=BATCH_AXES).generate(prompts, sp)
    finally:
        jax.clear_caches()
    assert [[c.token_ids for c in g] for g in on_gpu_layout] == [[c.token_ids for c in g] for g in alone]
