"""The analytic memory estimate (coderl_jax/plan/memory.py) against numbers worked out by hand for a
tiny config."""

from __future__ import annotations

import dataclasses

import pytest

from coderl_jax.models.config import ModelConfig
from coderl_jax.optim import OptimConfig
from coderl_jax.plan.memory import GIB, PHASES, estimate_memory, format_estimate, layer_params, phases
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, RolloutConfig, TrainConfig

# 2 layers, hidden 64, MLP 128, 4 heads of 16, 2 kv heads, vocabulary 256, tied embeddings, qkv bias:
# attention 64x64 (q) + 2 x 64x32 (k, v) + 64x64 (o) + 64+32+32 (bias) = 12,416; MLP 3 x 64x128 = 24,576;
# 2 norms 128: a layer 37,120; embedding 256x64 = 16,384; final norm 64: 16,384 + 2 x 37,120 + 64 = 90,688
MODEL = ModelConfig(family="qwen2", vocab_size=256, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                    num_kv_heads=2, head_dim=16, tie_word_embeddings=True, attention_bias=True)
# 4 prompts x 2 samples = 8 rows, 1 update of 2 micro-batches: 4 rows of 16 + 16 = 32 tokens each;
# 2 prompts x 2 samples = 4 rows per sampler call
TRAIN = TrainConfig(model="unused", param_dtype="float32", dtype="bfloat16", updates_per_step=1, micro_batches=2,
                    data=DataConfig(train_path="unused.jsonl", max_prompt_tokens=16),
                    rollout=RolloutConfig(prompts_per_step=4, group_size=2, max_new_tokens=16, cache_dtype="bfloat16",
                                          prompts_per_generate=2),
                    optim=OptimConfig(name="adamw"), loss=LossConfig(kl_coef=0.001, remat=True))

BYTES = {
    "params": 90_688 * 4,  # 362,752: float32 master weights
    "optimizer": 2 * 90_688 * 4,  # AdamW mu, nu
    "reference": 90_688 * 4,  # KL on: a float32 copy
    "sampler_copy": 90_688 * 2,  # rollout.dtype "auto": bfloat16
    "sampler_stacked": 74_240 * 2,  # the two layers (90,688 - 16,384 - 64), stacked, bfloat16
    "kv_cache": 2 * 2 * 2 * 16 * 4 * 32 * 2,  # (k, v) x layers x kv heads x head_dim x 4 rows x 32 slots x 2 B
    "kv_cache_growth": 32_768,
    "sampler_temporaries": 2 * 4 * 16**2 * 4 * 2 + 4 * 256 * 4 * 2,  # prefill scores + probs; decode logits x 2
    "gradients": 2 * 90_688 * 4,  # gradient + accumulator, float32
    "activations": 2 * 4 * 32 * 64 * 2 * 2,  # layers x rows x length x hidden x bf16 x 2
    "attention": 4 * 4 * 32**2 * 4 * 2,  # rows x heads x length^2 x float32 x 2
    "mlp": 4 * 32 * 128 * 2 * 6,  # rows x length x intermediate x bf16 x 6
    "logits": 128 * 256 * 4 * 4 + 256 * 64 * 2,  # one chunk (128 tokens x 256 < 2^25: unchunked) x 4 + head in bf16
}


def test_tiny_config_by_hand():
    assert MODEL.num_params() == 90_688 and layer_params(MODEL) == 74_240
    got = estimate_memory(MODEL, TRAIN)
    assert list(got) == list(BYTES)
    for term, b in BYTES.items():
        assert got[term] == pytest.approx(b / GIB, rel=1e-12), term
    resident = 362_752 + 725_504 + 362_752 + 181_376  # 1,632,384
    totals = phases(got)
    assert totals["rollout"] == pytest.approx((resident + 148_480 + 2 * 32_768 + 24_576) / GIB)  # 1,870,976
    assert totals["scoring"] == pytest.approx((resident + 131_072 + 196_608 + 557_056) / GIB)  # 2,517,120
    assert totals["update"] == pytest.approx((resident + 725_504 + 65_536 + 131_072 + 196_608 + 557_056) / GIB)
    table = format_estimate(got)
    assert table.count("\n") == len(BYTES) + 2 and all(p in table.splitlines()[0] for p in PHASES)


def test_switches_change_their_terms():
    no_kl = estimate_memory(MODEL, dataclasses.replace(TRAIN, loss=LossConfig(kl_coef=0.0)))
    assert no_kl["reference"] == 0
    sgd = estimate_memory(MODEL, dataclasses.replace(TRAIN, optim=OptimConfig(name="sgd")))
    assert sgd["optimizer"] == 0
    momentum = estimate_memory(MODEL, dataclasses.replace(TRAIN, optim=OptimConfig(name="sgd", momentum=0.9)))
    assert momentum["optimizer"] * GIB == 90_688 * 4
    chunked = estimate_memory(MODEL, dataclasses.replace(
        TRAIN, loss=LossConfig(kl_coef=0.001, logprob_chunk_rows=64, logprob_unchunked_elements=0)))
    assert chunked["logits"] * GIB == 64 * 256 * 4 * 4 + 256 * 64 * 2
    untied = MODEL.replace(tie_word_embeddings=False)  # the head is outside the layers
    assert layer_params(untied) == 74_240 and untied.num_params() == 90_688 + 256 * 64
    all_at_once = estimate_memory(MODEL, dataclasses.replace(TRAIN, rollout=dataclasses.replace(
        TRAIN.rollout, prompts_per_generate=0)))  # 0: every prompt in one call, 8 rows
    assert all_at_once["kv_cache"] * GIB == 2 * BYTES["kv_cache"]


@pytest.mark.skipif(not hasattr(RolloutConfig(), "dtype"), reason="no rollout.dtype in this version")
def test_sampler_copy_follows_rollout_dtype():
    f32 = estimate_memory(MODEL, dataclasses.replace(TRAIN, rollout=dataclasses.replace(TRAIN.rollout,
                                                                                        dtype="float32")))
    assert f32["sampler_copy"] * GIB == 90_688 * 4 and f32["sampler_stacked"] * GIB == 74_240 * 4
