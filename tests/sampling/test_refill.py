"""Decoding through refilled rows (`generate_refill`, `Sampler(slots=...)`) gives the tokens and
log-probs of decoding every row at once, whatever the number of rows, and its log-probs are the
trainer's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.models import transformer
from coderl_jax.sampling import sampler as S
from coderl_jax.sampling.sampler import DecodeSpec, Sampler, SamplingParams, generate_refill, generate_tokens
from test_sampler import PROMPTS, full_logits, log_softmax


def padded_prompts(rng, batch, length, vocab):
    tokens = rng.randint(1, vocab, (batch, length)).astype(np.int32)
    mask = np.ones((batch, length), bool)
    for r in range(batch):
        mask[r, : rng.randint(0, length // 2)] = False  # left padding of different widths
    return tokens, mask


def frequent_token(cfg, params, tokens, mask, spec):
    """A token this decode (same key) emits early in some rows but not others: as an EOS id it
    ends rows at different steps."""
    out = generate_tokens(params, cfg, tokens, mask, jax.random.key(5), spec=spec._replace(eos_ids=()))
    early = np.asarray(out.tokens_rn)[:, 2:12]
    values, counts = np.unique(early, return_counts=True)
    return int(values[np.argmax(counts)])


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("slots", [3, 20])
def test_refill_equals_static_decode(qwen2, greedy, slots):
    _, cfg, params = qwen2
    rng = np.random.RandomState(slots)
    tokens, mask = padded_prompts(rng, 6, 12, cfg.vocab_size)
    spec = DecodeSpec(n=4, max_new_tokens=24, greedy=greedy, top_k=0, use_top_p=False, eos_ids=(), pad_id=0,
                      chunk=8, unroll=2)
    spec = spec._replace(eos_ids=(frequent_token(cfg, params, tokens, mask, spec),))
    limit = jnp.asarray(rng.choice([1, 2, 5, 24, 30], size=24), jnp.int32)  # per-row caps, some past the max
    for lim in (None, limit):
        want = generate_tokens(params, cfg, tokens, mask, jax.random.key(5), lim, spec=spec)
        got = generate_refill(params, cfg, tokens, mask, jax.random.key(5), lim, spec=spec, slots=slots)
        num = np.asarray(want.num_tokens_r)
        assert len(set(num.tolist())) > 1  # rows end at different steps, so rows were refilled
        np.testing.assert_array_equal(np.asarray(got.num_tokens_r), num)
        np.testing.assert_array_equal(np.asarray(got.tokens_rn), np.asarray(want.tokens_rn))
        np.testing.assert_allclose(np.asarray(got.logprobs_rn), np.asarray(want.logprobs_rn), atol=1e-5)
        np.testing.assert_allclose(np.asarray(got.raw_logprobs_rn), np.asarray(want.raw_logprobs_rn), atol=1e-5)
    if limit is not None:
        assert (np.asarray(got.num_tokens_r) <= np.minimum(np.asarray(limit), 24)).all()


def test_sampler_with_slots_refills_and_matches_the_trainer(qwen2):
    _, cfg, params = qwen2
    sp = SamplingParams(n=4, max_new_tokens=16, temperature=1.0, eos_ids=(), seed=3)
    static = Sampler(cfg, params, max_cache_len=256, chunk=8, unroll=2).generate(PROMPTS, sp)
    before = S.TRACE_COUNTS["generate_refill"]
    S.TRACE_LOG.clear()
    refill = Sampler(cfg, params, max_cache_len=256, chunk=8, unroll=2, slots=5).generate(PROMPTS, sp)
    assert S.TRACE_COUNTS["generate_refill"] == before + 1 and ("decode_refill", 5, 16) in S.TRACE_LOG
    for prompt, g_static, g_refill in zip(PROMPTS, static, refill):
        for a, b in zip(g_static, g_refill):
            assert a.token_ids == b.token_ids
            logits = full_logits(cfg, params, prompt + b.token_ids)[len(prompt) - 1:-1]
            want = log_softmax(logits)[np.arange(len(b.token_ids)), b.token_ids]
            np.testing.assert_allclose(b.logprobs, want, atol=1e-4)


def test_sampler_with_as_many_slots_as_rows_decodes_statically(qwen2):
    _, cfg, params = qwen2
    before = S.TRACE_COUNTS["generate_refill"]
    Sampler(cfg, params, max_cache_len=256, slots=6).generate(PROMPTS[:2], SamplingParams(n=3, max_new_tokens=4))
    assert S.TRACE_COUNTS["generate_refill"] == before


def test_refill_on_the_accelerator_layout(qwen2):
    """Layers scanned over stacked weights and a stacked cache (GPU/TPU): the per-row cache writes
    and prompt copies give the same tokens as the per-layer layout."""
    _, cfg, params = qwen2
    rng = np.random.RandomState(1)
    tokens, mask = padded_prompts(rng, 4, 10, cfg.vocab_size)
    spec = DecodeSpec(n=3, max_new_tokens=12, greedy=False, top_k=0, use_top_p=False, eos_ids=(), pad_id=0,
                      chunk=4, unroll=2)
    limit = jnp.asarray(rng.choice([2, 3, 12], size=12), jnp.int32)
    want = generate_refill(params, cfg, tokens, mask, jax.random.key(2), limit, spec=spec, slots=4)
    got = generate_refill(transformer.stack_layers(params, cfg), cfg, tokens, mask, jax.random.key(2), limit,
                          spec=spec, slots=4)
    np.testing.assert_array_equal(np.asarray(got.tokens_rn), np.asarray(want.tokens_rn))
    np.testing.assert_allclose(np.asarray(got.logprobs_rn), np.asarray(want.logprobs_rn), atol=1e-5)


def test_negative_slots_is_an_error(qwen2):
    _, cfg, params = qwen2
    with pytest.raises(ValueError, match="slots"):
        Sampler(cfg, params, slots=-1)
