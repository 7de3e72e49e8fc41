"""Scoring a warm start: greedy (or sampled) completions in fixed-size batches, code pass@1 in the
sandbox, and the alignment answers' scores (parsed, items right, all items right)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def greedy_texts(sampler, tokenizer, prompts: list[str], *, max_new_tokens: int, batch: int = 32,
                 temperature: float = 0.0, seed: int = 0) -> list[str]:
    """Greedy completions of chat-rendered `prompts` (sampled ones with `temperature` > 0), in
    batches of a fixed size (sorted by length, the last batch padded by repetition) so that each
    prompt bucket compiles once."""
    from coderl_jax.data.chat import render_prompt
    from coderl_jax.sampling.sampler import SamplingParams

    ids = [list(tokenizer.encode(render_prompt(p, tokenizer), add_special_tokens=False)) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[str] = [""] * len(ids)
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        chunk = [ids[i] for i in rows]
        chunk += [chunk[-1]] * (batch - len(chunk)) if len(order) > batch else []
        sp = SamplingParams(n=1, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + start)
        results = sampler.generate(chunk, sp)
        for i, group in zip(rows, results):
            out[i] = group[0].text
    return out


def code_attempts(sampler, tokenizer, pool, problems, *, max_new_tokens: int, temperature: float = 0.0,
                  seed: int = 0) -> tuple[list[str], np.ndarray, list]:
    """The greedy (or sampled) responses to `problems`, their rewards and statuses from the
    sandboxed tests."""
    from coderl_jax.rl.rewards import code_rewards
    from coderl_jax.sft.trainer import prompt_text

    texts = greedy_texts(sampler, tokenizer, [prompt_text(p) for p in problems], max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed)
    rewards, statuses = code_rewards(pool, problems, texts)
    return texts, rewards, statuses


def failed_program_records(sampler, tokenizer, pool, problems, *, k: int, max_new_tokens: int, samples: int = 1,
                           temperature: float = 0.0, seed: int = 0, record_input: str = "first",
                           max_value_chars: int = 200, max_output_chars: int = 0) -> tuple[list, dict]:
    """Alignment records of the policy's own programs for `problems` that fail their tests but run
    and print, harvested as RL harvests failed rollouts (`samples` attempts a problem, greedy or at
    `temperature`), and what the attempts scored: {"attempts", "pass@1", "harvest"}."""
    import numpy as np

    from coderl_jax.alignment.harvest import harvest

    all_problems, texts, rewards = [], [], []
    for r in range(samples):
        t, rw, _ = code_attempts(sampler, tokenizer, pool, problems, max_new_tokens=max_new_tokens,
                                 temperature=temperature, seed=seed + 1_000_003 * r)
        all_problems += list(problems)
        texts += t
        rewards.append(rw)
    rewards = np.concatenate(rewards) if rewards else np.zeros(0)
    records, counts = harvest(pool, all_problems, texts, rewards, k=k, targets="last",
                              rng=np.random.default_rng(seed), record_input=record_input,
                              max_value_chars=max_value_chars, max_output_chars=max_output_chars)
    return records, {"attempts": len(texts), "pass@1": float(rewards.mean()) if len(texts) else None,
                     "harvest": counts}


def code_pass_rate(sampler, tokenizer, pool, problems, *, max_new_tokens: int) -> dict:
    if not problems:
        return {"problems": 0, "pass@1": None}
    texts, rewards, statuses = code_attempts(sampler, tokenizer, pool, problems, max_new_tokens=max_new_tokens)
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return {"problems": len(problems), "pass@1": float(rewards.mean()), "statuses": counts,
            "examples": [{"id": p.id, "passed": bool(r), "response": t} for p, r, t in
                         list(zip(problems, rewards, texts))[:3]]}


def alignment_scores(sampler, tokenizer, records, *, max_new_tokens: int, temperature: float = 0.0,
                     seed: int = 0) -> dict:
    from coderl_jax.alignment.answers import parse_answer
    from coderl_jax.alignment.prompts import alignment_prompt
    from coderl_jax.alignment.rewards import score_answer

    if not records:
        return {"records": 0, "exact": None}
    texts = greedy_texts(sampler, tokenizer, [alignment_prompt(r) for r in records], max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed)
    scores = [score_answer(r, parse_answer(t)) for r, t in zip(records, texts)]
    return {"records": len(records), "exact": sum(s.exact for s in scores) / len(scores),
            "item_accuracy": sum(s.accuracy for s in scores) / len(scores),
            "parsed": sum(s.parsed for s in scores) / len(scores),
            "output_correct": sum(s.items[0] for s in scores) / len(scores)}
