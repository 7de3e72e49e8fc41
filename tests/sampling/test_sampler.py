"""The jitted sampler: greedy parity with transformers, log-probs, top-k/p support, groups, EOS,
stop strings, bucketing and errors."""

from __future__ import annotations

import numpy as np
import pytest

from coderl_jax.models import transformer
from coderl_jax.sampling import sampler as S
from coderl_jax.sampling.sampler import Sampler, SamplingParams
from hf_util import FAMILIES

PROMPTS = [[5, 17, 300, 42, 7, 99, 180], [11, 3, 250], [400, 401, 402, 403, 8, 9, 10, 11, 12, 13, 14]]


def full_logits(cfg, params, ids):
    """Cache-free forward over one unpadded sequence: logits [t, v] (float64)."""
    ids = np.asarray([ids], np.int32)
    out = transformer.forward(params, cfg, ids, np.arange(ids.shape[1])[None])
    return np.asarray(out.logits_btv[0], np.float64)


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_matches_transformers(parity_models, family):
    import torch

    model, cfg, params = parity_models(family)
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    got = sampler.generate(PROMPTS, SamplingParams(max_new_tokens=32, temperature=0, eos_ids=()))
    width = max(map(len, PROMPTS))
    tokens = np.zeros((len(PROMPTS), width), np.int64)
    mask = np.zeros_like(tokens)
    for r, p in enumerate(PROMPTS):
        tokens[r, width - len(p):], mask[r, width - len(p):] = p, 1
    with torch.no_grad():
        ref = model.generate(torch.tensor(tokens), attention_mask=torch.tensor(mask), do_sample=False,
                             max_new_tokens=32, min_new_tokens=32, eos_token_id=None, pad_token_id=0)
    ref = ref[:, width:].numpy()
    for r in range(len(PROMPTS)):
        (c,) = got[r]
        assert c.token_ids == ref[r].tolist(), f"{family} prompt {r}"
        assert c.finish_reason == "length" and len(c.logprobs) == 32


def test_logprobs_equal_full_forward(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    groups = sampler.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=20, temperature=1.0, eos_ids=(), seed=3))
    for prompt, group in zip(PROMPTS, groups):
        for c in group:
            logits = full_logits(cfg, params, prompt + c.token_ids)[len(prompt) - 1:-1]
            want = log_softmax(logits)[np.arange(len(c.token_ids)), c.token_ids]
            np.testing.assert_allclose(c.logprobs, want, atol=1e-4)
            np.testing.assert_allclose(c.raw_logprobs, want, atol=1e-4)


def test_accelerator_layouts_sample_the_same(qwen2):
    """Traced as for a GPU/TPU (layers scanned over stacked weights and a stacked KV cache,
    separate q/k/v projections, decode attention as one einsum instead of XLA:CPU's unrolled
    multiply-adds), the sampler gives the same tokens and log-probs."""
    import jax

    _, cfg, params = qwen2
    sp = SamplingParams(n=2, max_new_tokens=20, temperature=1.0, eos_ids=(), seed=3)
    cpu = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2).generate(PROMPTS, sp)
    jax.clear_caches()  # the jitted generate is cached by shapes, not by the layout chosen at trace time
    try:
        with transformer.compiling_for("gpu"):
            assert transformer.scan_layers() and not transformer.decode_multiply_add()
            assert not transformer.fuse_projections()
            acc = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2).generate(PROMPTS, sp)
    finally:
        jax.clear_caches()
    assert transformer.decode_multiply_add()  # back to this host's layouts
    for group_cpu, group_acc in zip(cpu, acc):
        for a, b in zip(group_cpu, group_acc):
            assert a.token_ids == b.token_ids
            np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_temperature_logprobs_are_of_the_processed_distribution(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    (c,), = sampler.generate(PROMPTS[:1], SamplingParams(max_new_tokens=12, temperature=0.7, eos_ids=(), seed=1))
    logits = full_logits(cfg, params, PROMPTS[0] + c.token_ids)[len(PROMPTS[0]) - 1:-1]
    steps = np.arange(len(c.token_ids))
    np.testing.assert_allclose(c.logprobs, log_softmax(logits / 0.7)[steps, c.token_ids], atol=1e-4)
    np.testing.assert_allclose(c.raw_logprobs, log_softmax(logits)[steps, c.token_ids], atol=1e-4)


@pytest.mark.parametrize("top_k,top_p", [(4, 1.0), (0, 0.6), (6, 0.8)])
def test_top_k_top_p_restrict_support(qwen2, top_k, top_p):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    sp = SamplingParams(n=8, max_new_tokens=16, temperature=1.0, top_k=top_k, top_p=top_p, eos_ids=(), seed=7)
    groups = sampler.generate(PROMPTS[:2], sp)
    distinct = set()
    for prompt, group in zip(PROMPTS, groups):
        for c in group:
            logits = full_logits(cfg, params, prompt + c.token_ids)[len(prompt) - 1:-1]
            for step, tok in enumerate(c.token_ids):
                order = np.argsort(-logits[step], kind="stable")
                keep = order[: top_k or len(order)]
                probs = np.exp(log_softmax(logits[step][keep]))
                before = np.cumsum(probs) - probs
                loose, strict = keep[before < top_p + 1e-5], keep[before < top_p - 1e-5]
                assert tok in loose, (step, tok)
                distinct.add((step, tok))
                # the sampler's log-prob is over the kept set (either one, at a rounding boundary)
                wants = [log_softmax(logits[step][k])[list(k).index(tok)] for k in (loose, strict) if tok in k]
                assert min(abs(c.logprobs[step] - w) for w in wants) < 1e-4
    assert len(distinct) > 16  # it did sample, not just take the argmax


def test_groups_share_prefill_and_differ(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    S.TRACE_LOG.clear()
    sp = SamplingParams(n=4, max_new_tokens=10, temperature=1.0, eos_ids=(), seed=11)
    groups = sampler.generate(PROMPTS, sp)
    assert ("prefill", 3, 16) in S.TRACE_LOG and ("decode", 12, 16) in S.TRACE_LOG
    assert not any(e[0] == "prefill" and e[1] != 3 for e in S.TRACE_LOG)
    for group in groups:
        assert len(group) == 4
        assert len({tuple(c.token_ids) for c in group}) > 1
    again = sampler.generate(PROMPTS, sp)
    assert [[c.token_ids for c in g] for g in again] == [[c.token_ids for c in g] for g in groups]
    other = sampler.generate(PROMPTS, SamplingParams(**{**sp.__dict__, "seed": 12}))
    assert [[c.token_ids for c in g] for g in other] != [[c.token_ids for c in g] for g in groups]


def test_eos_cuts_with_reason(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2)
    (base,), = sampler.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24, temperature=0, eos_ids=()))
    eos = base.token_ids[9]
    first = base.token_ids.index(eos)
    (c,), = sampler.generate(PROMPTS[:1], SamplingParams(max_new_tokens=24, temperature=0, eos_ids=(12345, eos)))
    assert c.finish_reason == "eos"
    assert c.token_ids == base.token_ids[: first + 1]
    assert len(c.logprobs) == first + 1
    np.testing.assert_allclose(c.logprobs, base.logprobs[: first + 1], atol=1e-6)


def test_stop_strings_cut_text_and_tokens(tmp_path):
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.models.tiny import byte_tokenizer, make_tiny_model

    cfg, params = load_hf(make_tiny_model(tmp_path / "tiny"))
    tok = byte_tokenizer()
    sampler = Sampler(cfg, params, tok, max_cache_len=512, chunk=16, unroll=2)
    (base,), = sampler.generate(["def f(x):"], SamplingParams(max_new_tokens=40, temperature=0, eos_ids=()))
    assert base.text == tok.decode(base.token_ids)
    stop = base.text[12:15]
    cut = base.text.index(stop)
    (c,), = sampler.generate(["def f(x):"], SamplingParams(max_new_tokens=40, temperature=0, eos_ids=(),
                                                           stop=("never-there", stop)))
    assert c.finish_reason == "stop"
    assert c.text == base.text[:cut]
    assert stop in tok.decode(c.token_ids) and stop not in tok.decode(c.token_ids[:-1])
    assert len(c.logprobs) == len(c.token_ids) < len(base.token_ids)


def test_bucketing_reuses_the_compilation(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, buckets=(16, 32), chunk=16, unroll=2)
    sp = SamplingParams(max_new_tokens=8, temperature=0, eos_ids=())
    sampler.generate([[5, 6, 7, 8, 9]], sp)
    before = S.TRACE_COUNTS["generate_tokens"]
    (c,), = sampler.generate([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]], sp)  # same bucket (16)
    assert S.TRACE_COUNTS["generate_tokens"] == before
    assert len(c.token_ids) == 8
    sampler.generate([[1] * 20], sp)  # the next bucket compiles once
    assert S.TRACE_COUNTS["generate_tokens"] == before + 1
    # past the last bucket that fits (32 + 8 <= 48): every length up to the cache's limit shares
    # the one shape max_cache_len - max_new_tokens (40), not one compile per length
    small = Sampler(cfg, params, max_cache_len=48, buckets=(16, 32, 64), chunk=16, unroll=2)
    small.generate([[1] * 33], sp)
    before = S.TRACE_COUNTS["generate_tokens"]
    (c,), = small.generate([[2] * 39], sp)
    small.generate([[3] * 36], sp)
    assert S.TRACE_COUNTS["generate_tokens"] == before
    assert c.token_ids == sampler.generate([[2] * 39], sp)[0][0].token_ids  # the padding changes nothing


def test_params_are_an_argument(qwen2):
    """New parameter values (the RL loop's every step) neither recompile nor go stale."""
    _, cfg, params = qwen2
    current = {"p": params}
    sampler = Sampler(cfg, lambda: current["p"], max_cache_len=256, chunk=16, unroll=2)
    sp = SamplingParams(max_new_tokens=8, temperature=0, eos_ids=())
    (a,), = sampler.generate(PROMPTS[:1], sp)
    before = S.TRACE_COUNTS["generate_tokens"]
    import jax
    current["p"] = jax.tree.map(lambda x: x * 1.5, params)
    (b,), = sampler.generate(PROMPTS[:1], sp)
    assert S.TRACE_COUNTS["generate_tokens"] == before
    assert a.token_ids != b.token_ids


def test_prompt_too_long_is_a_clear_error(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=64)
    with pytest.raises(ValueError, match="exceeds the context"):
        sampler.generate([[1] * 60], SamplingParams(max_new_tokens=8))
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_bfloat16_cache_runs(qwen2):
    _, cfg, params = qwen2
    sampler = Sampler(cfg, params, max_cache_len=256, cache_dtype="bfloat16", chunk=16, unroll=2)
    (c,), = sampler.generate(PROMPTS[:1], SamplingParams(max_new_tokens=8, temperature=0, eos_ids=()))
    (f,), = Sampler(cfg, params, max_cache_len=256, chunk=16, unroll=2).generate(
        PROMPTS[:1], SamplingParams(max_new_tokens=8, temperature=0, eos_ids=()))
    assert len(c.token_ids) == 8 and c.token_ids[:2] == f.token_ids[:2]
