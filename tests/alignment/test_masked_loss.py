"""The alignment signal in JAX against NumPy references: the teacher-forced likelihood of the
true values and the policy loss with per-variable credit."""

from __future__ import annotations

import json
from typing import NamedTuple

import jax
import numpy as np
import pytest

from coderl_jax.alignment import AlignmentRecord, AlignmentTask, answer_line
from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.alignment.likelihood import masked_mean_loglik
from coderl_jax.rl import compute_advantages, policy_loss
from coderl_jax.rl.packing import pack_rollouts
from tracer.values import serialize


class C(NamedTuple):  # the part of a sampler Completion the task reads
    token_ids: list


RECORD = AlignmentRecord(program="x = 2\ny = [x, 5]\nprint(x + 5)\n", stdin="", output="7\n",
                         targets=({"name": "x", "value": serialize(2), "json": 2},
                                  {"name": "y", "value": serialize([2, 5]), "json": [2, 5]}))
ANSWERS = [  # G = 4 samples of one alignment prompt: output, x, y right or wrong
    'x is 2, y is [2, 5].\n{"final_output": "7", "variables": {"x": 2, "y": [2, 5]}}',
    'guess\n{"final_output": "7", "variables": {"x": 3, "y": [2, 5]}}',
    'hmm\n{"final_output": "8", "variables": {"x": 2, "y": [3]}}',
    "no answer at all",
]


def make_task(tok, **cfg) -> AlignmentTask:
    encode = lambda texts: [tok.encode(t, add_special_tokens=False) for t in texts]  # noqa: E731
    return AlignmentTask(AlignmentConfig(mode="coderl", **cfg), tok, prompts_per_step=2, group_size=4, seed=0,
                         encode_prompts=encode, max_prompt_tokens=512)


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_teacher_forced_likelihood_matches_numpy(tmp_path, byte_tok):
    from coderl_jax.models import transformer
    from coderl_jax.models.hf_io import load_hf
    from coderl_jax.models.tiny import make_tiny_model
    from coderl_jax.rl.train_step import sequence_logprobs

    cfg, params = load_hf(make_tiny_model(tmp_path / "m", seed=3))
    task = make_task(byte_tok, reward="likelihood")
    comps = [C(byte_tok.encode(a, add_special_tokens=False) + [byte_tok.eos_token_id]) for a in ANSWERS]
    scored = task.score([RECORD], comps)
    responses, masks = task.teacher_forced_rows(scored, comps)
    line = answer_line(RECORD)
    for resp, mask, answer_text in zip(responses, masks, ANSWERS):
        text = byte_tok.decode(resp)
        # the sampled reasoning is kept, the sampled answer replaced by the truth
        reasoning = answer_text.rsplit("\n", 1)[0] + "\n" if "{" in answer_text else answer_text + "\n"
        assert text == reasoning + line
        # byte tokenizer: one token per character, so the mask is exactly the value characters
        picked = "".join(ch for ch, m in zip(text, mask) if m)
        assert picked == '"7"' + "2" + "[2, 5]"
    prompt = task.prompt_ids([RECORD])[0]
    stats = jax.jit(lambda p, b: sequence_logprobs(p, cfg, b))
    ours = task.likelihood(lambda b: stats(params, {k: jax.numpy.asarray(v) for k, v in b.items()})[0],
                           [prompt] * 4, responses, masks)
    # reference: full-vocabulary log-softmax of the model's logits, gathered and averaged in NumPy
    batch = pack_rollouts([prompt] * 4, responses, length=len(prompt) + max(map(len, responses)), pad_id=0,
                          response_loss_mask=masks)
    logits = np.asarray(transformer.forward(params, cfg, batch["tokens"], batch["positions"],
                                            mask_bt=batch["attn_mask"]).logits_btv, np.float64)
    logp = np_log_softmax(logits)
    targets = np.concatenate([batch["tokens"][:, 1:], np.zeros_like(batch["tokens"][:, :1])], axis=1)
    gathered = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    m = batch["loss_mask"]
    expected = (gathered * m).sum(1) / m.sum(1)
    assert m.sum(1).tolist() == [3 + 1 + 6] * 4
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


def test_masked_mean_loglik_matches_numpy():
    rng = np.random.default_rng(0)
    logp = rng.normal(size=(5, 11)).astype(np.float32)
    mask = rng.random((5, 11)) < 0.3
    mask[2] = False
    mean, count = masked_mean_loglik(logp, mask)
    expected = np.array([logp[b][mask[b]].mean() if mask[b].any() else 0.0 for b in range(5)])
    np.testing.assert_allclose(np.asarray(mean), expected, atol=1e-6)
    assert np.asarray(count).tolist() == mask.sum(1).tolist()


@pytest.mark.parametrize("estimator", ["grpo", "rloo"])
def test_per_variable_credit_loss_matches_numpy(byte_tok, estimator):
    task = make_task(byte_tok, per_variable_credit=True)
    comps = [C(byte_tok.encode(a, add_special_tokens=False)) for a in ANSWERS]
    scored = task.score([RECORD], comps)
    items = np.array([s.items for s in scored.scores], np.float64)
    assert items.tolist() == [[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert scored.rewards.tolist() == pytest.approx([1.0, 0.1 + 0.9 * 2 / 3, 0.1 + 0.9 / 3, 0.0])
    sample_adv = np.asarray(compute_advantages(scored.rewards, 4, estimator), np.float32)
    token_adv = task.token_advantages(scored, comps, sample_adv, estimator)

    # independent reference: item advantages by the estimator's formula; value characters located
    # with str.find (byte tokenizer: token i is character i)
    def np_adv(r):
        g = len(r)
        if estimator == "grpo":
            return (r - r.mean()) / (r.std(ddof=1) + 1e-6)
        return r * g / (g - 1) - r.mean() * g / (g - 1)

    item_adv = np.stack([np_adv(items[:, j]) for j in range(3)], axis=1)
    expected = []
    for i, text in enumerate(ANSWERS):
        adv = np.full(len(text), sample_adv[i], np.float64)
        if "{" in text:
            ans = json.loads(text.rsplit("\n", 1)[-1])
            pieces = [('"final_output": ', json.dumps(ans["final_output"])),
                      ('"x": ', json.dumps(ans["variables"]["x"])), ('"y": ', json.dumps(ans["variables"]["y"]))]
            for j, (key, value) in enumerate(pieces):
                start = text.index(key + value) + len(key)
                adv[start:start + len(value)] = item_adv[i, j]
        expected.append(adv)
    for ours, ref in zip(token_adv, expected):
        np.testing.assert_allclose(ours, ref, atol=1e-5)

    # the clipped policy loss on those per-token advantages against NumPy
    prompt = [7] * 5
    batch = pack_rollouts([prompt] * 4, [c.token_ids for c in comps], length=5 + 90, pad_id=0,
                          token_advantages=token_adv)
    rng = np.random.default_rng(1)
    old = rng.uniform(-3, -0.1, batch["loss_mask"].shape).astype(np.float32)
    new = (old + rng.normal(0, 0.3, old.shape)).astype(np.float32)
    loss, _ = policy_loss(new, old, batch["advantages"], batch["loss_mask"])
    m = batch["loss_mask"]
    ratio = np.exp(new.astype(np.float64) - old)
    a = batch["advantages"].astype(np.float64)
    per = np.maximum(-a * ratio, -a * np.clip(ratio, 0.8, 1.2))
    per = np.where(a < 0, np.minimum(-a * 3.0, per), per)
    np.testing.assert_allclose(float(loss), (per * m).sum() / m.sum(), rtol=1e-5)
