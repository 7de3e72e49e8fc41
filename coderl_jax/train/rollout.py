"""Host-side glue of a GRPO step: code extraction, unit-test rewards, and packing rollouts into the
fixed-shape arrays the train step expects.

Packing layout (see rl/train_step.py): each row is `[left padding][prompt][response][right padding]`
of static length L = max_prompt_len + max_new_tokens. Entry t of the per-token arrays is about
token t+1, so the response tokens r_0..r_{n-1} that start at column p are trained at columns
p-1 .. p+n-2.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(response: str) -> str | None:
    """The last fenced code block of a response (the official code's rule: the last ```python
    block; an untagged fence counts too, and an unclosed final fence runs to the end)."""
    blocks = _FENCE.findall(response)
    if not blocks:
        return None
    code = blocks[-1].strip("\n")
    return code if code.strip() else None


def code_reward_requests(problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0,
                         prepend_prompt_for_assert: bool = False) -> tuple[list[dict], list[int]]:
    """Tracer run_tests requests for the responses that contain code; returns (requests, row index)."""
    requests, rows = [], []
    for i, (problem, response) in enumerate(zip(problems, responses)):
        code = extract_code(response)
        if code is None:
            continue
        requests.append({"id": str(i), "program": code, "tests": problem.tests, "timeout_s": timeout_s})
        rows.append(i)
    return requests, rows


def code_rewards(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0):
    """Binary rewards (1.0 when every test passes) and the tracer's statuses, one per response."""
    requests, rows = code_reward_requests(problems, responses, timeout_s=timeout_s)
    rewards = np.zeros(len(responses), np.float32)
    statuses = ["no_code"] * len(responses)
    if requests:
        for row, result in zip(rows, pool.run_tests(requests)):
            rewards[row] = 1.0 if result.get("passed") else 0.0
            statuses[row] = result.get("status", "sandbox_error")
    return rewards, statuses


def pack_rollouts(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], *, length: int,
                  pad_id: int, sampler_logprobs: Sequence[Sequence[float]] | None = None,
                  advantages: np.ndarray | None = None, token_advantages: Sequence[Sequence[float]] | None = None,
                  response_loss_mask: Sequence[Sequence[bool]] | None = None) -> dict[str, np.ndarray]:
    """Pack (prompt, response) pairs into train-step arrays of shape [B, length].

    `advantages` [B] is broadcast over each response; `token_advantages` gives one value per
    response token instead (per-variable credit). `response_loss_mask` can exclude response tokens
    from the loss (default: all trained). Rows too long for `length` raise ValueError.
    """
    b = len(prompt_ids)
    tokens = np.full((b, length), pad_id, np.int32)
    attn = np.zeros((b, length), bool)
    loss = np.zeros((b, length), bool)
    adv = np.zeros((b, length), np.float32)
    sampler_lp = np.zeros((b, length), np.float32)
    prompt_len = max((len(p) for p in prompt_ids), default=0)
    for i, (prompt, response) in enumerate(zip(prompt_ids, response_ids)):
        n_p, n_r = len(prompt), len(response)
        if prompt_len + n_r > length:
            raise ValueError(f"row {i}: prompt ({prompt_len} incl. padding) + response ({n_r}) exceeds length {length}")
        start = prompt_len - n_p  # left-pad prompts so all responses start at the same column
        tokens[i, start:prompt_len] = prompt
        tokens[i, prompt_len:prompt_len + n_r] = response
        attn[i, start:prompt_len + n_r] = True
        cols = slice(prompt_len - 1, prompt_len - 1 + n_r)
        trained = np.ones(n_r, bool) if response_loss_mask is None else np.asarray(response_loss_mask[i], bool)
        loss[i, cols] = trained
        if token_advantages is not None:
            adv[i, cols] = np.asarray(token_advantages[i], np.float32)
        elif advantages is not None:
            adv[i, cols] = advantages[i]
        if sampler_logprobs is not None:
            sampler_lp[i, cols] = np.asarray(sampler_logprobs[i], np.float32)[:n_r]
    positions = np.maximum(np.cumsum(attn, axis=1) - 1, 0).astype(np.int32)
    return {"tokens": tokens, "positions": positions, "attn_mask": attn, "loss_mask": loss, "advantages": adv,
            "sampler_logprobs": sampler_lp, "old_logprobs": np.zeros((b, length), np.float32),
            "ref_logprobs": np.zeros((b, length), np.float32)}
