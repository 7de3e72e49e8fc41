"""The likelihood reward (`alignment.reward=likelihood`) end to end on a byte-level BPE tokenizer.

The byte tokenizer maps one character to one token, so a value's tokens are its characters. Here
the tokenizer is the project's BPE (models/bpe.py) trained locally: values share tokens with their
neighbours (` 1` carries the space before a number, `"}}` closes a string and two objects, `é` is
two byte tokens), and numbers split into several tokens. The reward is checked against NumPy
from the model's full logits on each unpadded row, its token mask against the tokenizer's own
offsets, and gradient steps on it against steps on wrong values.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coderl_jax.alignment import AlignmentRecord, AlignmentTask, answer_line
from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.alignment.likelihood import masked_mean_loglik
from tracer.values import serialize

G = 3  # samples per record


class C(NamedTuple):  # the part of a sampler Completion the task reads
    token_ids: list


def record(output: str, **targets) -> AlignmentRecord:
    return AlignmentRecord(program="def main():\n    ...\nmain()\n", stdin="3\n", output=output,
                           targets=tuple({"name": n.replace("__", "."), "value": serialize(v), "json": v}
                                         for n, v in targets.items()))


RECORDS = [
    record("15\n", total=12345678, main__acc=[3, -41, 500]),
    record("héllo\nwörld\n", s="héllo wörld", x=-12.5),
    record("7 8\n", d={"k": [7, 8]}, flag=True, n=None),
]
# a wrong value of each target, tokenised differently from the truth (the control arm)
WRONG = [
    record("93\n", total=60, main__acc=[88]),
    record("bye\n", s="zz", x=4),
    record("0\n", d={"q": []}, flag=False, n=2),
]


def sampled_answer(rec: AlignmentRecord, shift: int) -> str:
    """A parseable answer line with wrong values."""
    return json.dumps({"final_output": rec.output.rstrip("\n") + "!" * shift,
                       "variables": {t["name"]: [shift] for t in rec.targets}}, ensure_ascii=False)


def samples(rec: AlignmentRecord) -> list[tuple[str, str]]:
    """G sampled responses as (prefix, tail): the teacher-forced text is prefix + the true line
    when the tail holds a parsed answer; with no answer (empty tail), prefix + a newline + it."""
    return [
        ("Step 1: total = 12 + 3 = 15, évens = [4, -4].\nStep 2: the loop adds numbers.\n",
         sampled_answer(rec, 1)),
        # an indented answer in a fence: the answer line starts after the newline, so the
        # indentation (merged with the newline into one BPE token) is not kept
        ("I think the values follow:\n", "  " + sampled_answer(rec, 2) + "\n```"),
        ("no answer, only reasoning: total = 7", ""),
    ]


def teacher_forced_text(rec: AlignmentRecord, prefix: str, tail: str) -> str:
    if tail:
        return prefix + answer_line(rec)
    return prefix + "\n" + answer_line(rec)


@pytest.fixture(scope="module")
def bpe():
    from coderl_jax.models.bpe import train_bpe_tokenizer

    corpus = []
    for i in range(40):
        corpus.append(json.dumps({"final_output": f"{i * 7} {i}", "variables": {
            "total": i * 13, "main.acc": [i, i + 1, 10 * i], "s": "ab" * (i % 3)}}))
        corpus.append(f"Step {i}: total = {i * 13}, evens = [{2 * i}, {-2 * i}]. The loop adds numbers.\n")
        corpus.append("def main():\n    total = 0\n    for x in range(10):\n        total += x\n    print(total)\n")
    return train_bpe_tokenizer(corpus, vocab_size=400)


@pytest.fixture(scope="module")
def model(bpe):
    from coderl_jax.models.transformer import init_params
    from coderl_jax.sft.trainer import sft_model_config

    cfg = sft_model_config(bpe, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    return cfg, init_params(cfg, 5)


def make_task(tok) -> AlignmentTask:
    from coderl_jax.data.chat import render_prompt

    encode = lambda texts: [tok.encode(render_prompt(t, tok), add_special_tokens=False) for t in texts]  # noqa: E731
    return AlignmentTask(AlignmentConfig(mode="coderl", reward="likelihood"), tok, prompts_per_step=2,
                         group_size=G, seed=0, encode_prompts=encode, max_prompt_tokens=2048)


def completions(tok, records) -> list[C]:
    return [C(tok.encode(p + t, add_special_tokens=False) + [tok.eos_token_id])
            for rec in records for p, t in samples(rec)]


def value_spans(line: str, rec: AlignmentRecord) -> list[tuple[int, int]]:
    """Character spans of the true values in the true answer line, found by text search (the
    keys are distinct and come before the values that follow them)."""
    out = json.dumps(rec.output.rstrip("\n"), ensure_ascii=False)
    head = '{"final_output": '
    assert line.startswith(head + out)
    spans = [(len(head), len(head) + len(out))]
    at = line.index('"variables": ')
    for t in rec.targets:
        piece = f'"{t["name"]}": ' + json.dumps(t["json"], ensure_ascii=False)
        at = line.index(piece, at)
        spans.append((at + len(piece) - len(json.dumps(t["json"], ensure_ascii=False)), at + len(piece)))
        at += len(piece)
    return spans


def reference_rows(tok, rec: AlignmentRecord, prefix: str, sampled_ids: list[int]):
    """One teacher-forced row from the tokenizer's own offsets: the sampled tokens that end within
    `prefix`, then tok(carry + true line) where the carry is the rest of the prefix, masked where
    a token's characters overlap a true value. Returns (response ids, mask, the continuation's
    encoding, carry, the values' character spans in carry + line)."""
    sampled = tok(tok.decode(sampled_ids, skip_special_tokens=True), add_special_tokens=False,
                  return_offsets_mapping=True)
    assert sampled["input_ids"] == [i for i in sampled_ids if i not in tok.all_special_ids]
    keep = sum(1 for _, e in sampled["offset_mapping"] if e <= len(prefix))
    carry = prefix[sampled["offset_mapping"][keep - 1][1] if keep else 0:]
    line = answer_line(rec)
    cont = tok(carry + line, add_special_tokens=False, return_offsets_mapping=True)
    spans = [(s + len(carry), e + len(carry)) for s, e in value_spans(line, rec)]
    mask = [any(a < e and b > s for s, e in spans) for a, b in cont["offset_mapping"]]
    return sampled_ids[:keep] + cont["input_ids"], np.array([False] * keep + mask), cont, carry, spans


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_value_loglik(cfg, params, prompts, responses, masks) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (sum, count) of log p(value token), in NumPy from the model's full logits. Each row
    is prompt + response from column 0 (no left padding), padded on the right, which a causal
    model does not see from earlier columns."""
    from coderl_jax.models import transformer

    rows = [p + r for p, r in zip(prompts, responses)]
    tokens = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for b, row in enumerate(rows):
        tokens[b, :len(row)] = row
    positions = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int32), tokens.shape)
    logits = jax.jit(lambda p, t, q: transformer.forward(p, cfg, t, q).logits_btv)(params, tokens, positions)
    logp = np_log_softmax(np.asarray(logits, np.float64))
    sums, counts = [], []
    for b, (prompt, mask) in enumerate(zip(prompts, masks)):
        cols = len(prompt) + np.flatnonzero(mask)  # the value tokens' columns, predicted one column before
        sums.append(logp[b, cols - 1, tokens[b, cols]].sum())
        counts.append(len(cols))
    return np.array(sums), np.array(counts)


def likelihood_run(task, cfg, params):
    """A training-loop `Run` with what the alignment reward phase reads (its scoring program is
    the loop's: build_scoring on the default config)."""
    from coderl_jax.train.config import TrainConfig
    from coderl_jax.train.phases import Run
    from coderl_jax.train.programs import build_scoring

    train_cfg = TrainConfig()
    train_cfg = dataclasses.replace(train_cfg, rollout=dataclasses.replace(train_cfg.rollout, group_size=G))
    return Run(cfg=train_cfg, state=SimpleNamespace(params=params), tokenizer=task.tokenizer, problems=None,
               sampler=None, reward_fn=None, tracer=None, update_fn=None, score_fn=build_scoring(train_cfg, cfg),
               lr_schedule=None, ref_params=None, max_len=4096, align=task)


def test_likelihood_reward_on_bpe_matches_numpy(bpe, model):
    from coderl_jax.train.phases import StepBatch, alignment_rewards

    cfg, params = model
    task = make_task(bpe)
    comps = completions(bpe, RECORDS)
    prompts = task.prompt_ids(RECORDS)
    assert len(set(map(len, prompts))) == len(RECORDS)  # left padding differs between rows
    batch = StepBatch(step=0, problems=[], code_prompt_ids=[], records=RECORDS, align_prompt_ids=prompts,
                      align_completions=comps)
    out = alignment_rewards(likelihood_run(task, cfg, params), batch)
    rewards = out.align_rewards
    assert out.align_scored.scores[0].parsed and not out.align_scored.scores[2].parsed

    responses, masks = task.teacher_forced_rows(out.align_scored, comps)
    rows = [(rec, p, t) for rec in RECORDS for p, t in samples(rec)]
    straddling = multi = n_spans = 0
    for (rec, prefix, tail), resp, mask, comp in zip(rows, responses, masks, comps):
        # the sampled reasoning kept as sampled, the true answer line after it, nothing else
        assert bpe.decode(resp) == teacher_forced_text(rec, prefix, tail)
        ref_ids, ref_mask, cont, carry, spans = reference_rows(bpe, rec, prefix + ("\n" if not tail else ""),
                                                               comp.token_ids)
        assert resp == ref_ids
        # the masked positions are exactly the tokens overlapping a true value
        assert mask.tolist() == ref_mask.tolist()
        text = carry + answer_line(rec)
        offsets = cont["offset_mapping"]
        for s, e in spans:
            toks = [j for j, (a, b) in enumerate(offsets) if a < e and b > s]
            multi += len(toks) > 1
            n_spans += 1
            straddling += offsets[toks[0]][0] < s or offsets[toks[-1]][1] > e  # shares a token with its neighbours
            assert text[s:e] in text[offsets[toks[0]][0]:offsets[toks[-1]][1]]  # the masked run holds it all
    # the BPE case: every value is several tokens, most share a token with their neighbours
    assert multi == n_spans and straddling >= n_spans / 2
    sums, counts = np_value_loglik(cfg, params, [p for p in prompts for _ in range(G)], responses, masks)
    assert counts.tolist() == [int(m.sum()) for m in masks]
    # the reward is the mean log-probability of the value tokens (a sum over exactly those tokens)
    np.testing.assert_allclose(rewards, sums / counts, rtol=0, atol=2e-5)
    for g in range(len(RECORDS)):  # the reasoning differs, so the reward differs within a group
        assert np.ptp(rewards[g * G:(g + 1) * G]) > 1e-4


def pack_likelihood_rows(task, tok, records, comps, prompts):
    """Packed rows (response = sampled reasoning + the records' answer lines, masked on their values)."""
    from coderl_jax.rl.packing import pack_rollouts

    scored = task.score(records, comps)
    responses, masks = task.teacher_forced_rows(scored, comps)
    row_prompts = [p for p in prompts for _ in range(G)]
    batch = pack_rollouts(row_prompts, responses, length=64 * -(-(max(map(len, prompts)) + 160) // 64),
                          pad_id=tok.pad_token_id, response_loss_mask=masks)
    return batch, responses, masks


class Training(SimpleNamespace):
    def __repr__(self) -> str:  # failure reports: not the packed arrays
        return f"Training(n_tokens={self.n_tokens}, true_gain={self.true_gain:.1f})"


@pytest.fixture(scope="module")
def likelihood_training(bpe, model):
    """Adam steps that raise the likelihood reward of packed rows, and the measure: the summed
    log-probability of the true value tokens of the fixed rows (reasoning + true answer line),
    in NumPy, with the offsets-checked masks of the first test."""
    import optax

    from coderl_jax.rl.train_step import sequence_logprobs

    cfg, params0 = model
    task = make_task(bpe)
    comps = completions(bpe, RECORDS)
    prompts = task.prompt_ids(RECORDS)
    assert task.prompt_ids(WRONG) == prompts  # the same prompts: only the answers differ
    true_batch, responses, masks = pack_likelihood_rows(task, bpe, RECORDS, comps, prompts)
    wrong_batch, _, _ = pack_likelihood_rows(task, bpe, WRONG, comps, prompts)
    assert wrong_batch["tokens"].shape == true_batch["tokens"].shape  # one compiled step
    opt = optax.adam(3e-3)

    def objective(params, batch):  # the likelihood reward of every row, averaged
        logp, _ = sequence_logprobs(params, cfg, batch)
        return masked_mean_loglik(logp, batch["loss_mask"])[0].mean()

    @jax.jit
    def step(params, opt_state, batch, sign):
        grads = jax.grad(lambda p: -sign * objective(p, batch))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def gain(batch, sign=1.0, steps=8) -> float:
        batch = {k: jnp.asarray(v) for k, v in batch.items()}
        params, opt_state = params0, opt.init(params0)
        for _ in range(steps):
            params, opt_state = step(params, opt_state, batch, sign)
        return true_loglik(params) - before

    def true_loglik(params) -> float:
        return float(np_value_loglik(cfg, params, [p for p in prompts for _ in range(G)], responses, masks)[0].sum())

    before = true_loglik(params0)
    n_tokens = int(sum(m.sum() for m in masks))
    return Training(gain=gain, true_batch=true_batch, wrong_batch=wrong_batch, n_tokens=n_tokens,
                           true_gain=gain(true_batch))


def test_optimising_the_likelihood_raises_the_true_values_loglik(likelihood_training):
    t = likelihood_training
    control = t.gain(t.wrong_batch)  # the same steps with wrong values in the answer lines
    print(f"{t.n_tokens} value tokens: gain {t.true_gain:.1f} nats, wrong values {control:.1f}")
    assert t.true_gain > 0.5 * t.n_tokens  # at least half a nat per value token
    assert control < 0.5 * t.true_gain


def test_the_gain_needs_the_sign_and_the_value_tokens(likelihood_training):
    """The measure above tells a working objective from a broken one: the same steps with the
    sign flipped lower the true values' log-likelihood, and steps on the answer line's other
    tokens (keys, punctuation: a mask on the wrong tokens) raise it far less."""
    t = likelihood_training
    flipped = t.gain(t.true_batch, sign=-1.0)
    m = t.true_batch["loss_mask"]
    cols = np.arange(m.shape[1])
    first = np.where(m.any(1), m.argmax(1), 0)[:, None]
    last = (m.shape[1] - 1 - m[:, ::-1].argmax(1))[:, None]
    others = (cols >= first) & (cols <= last + 2) & ~m  # between and right after the values
    assert others.sum() >= m.sum() / 2
    wrong_tokens = t.gain({**t.true_batch, "loss_mask": others})
    print(f"gain {t.true_gain:.1f} nats, sign flipped {flipped:.1f}, other tokens of the line {wrong_tokens:.1f}")
    assert flipped < -0.5 * t.n_tokens
    assert wrong_tokens < 0.5 * t.true_gain
