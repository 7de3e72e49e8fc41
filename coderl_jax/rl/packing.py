"""Packing rollouts into the fixed-shape arrays the train step expects.

Packing layout (see rl/train_step.py): each row is `[left padding][prompt][response][right padding]`
of a given length L (the loop picks a bucketed L per segment). Entry t of the per-token arrays is about
token t+1, so the response tokens r_0..r_{n-1} that start at column p are trained at columns
p-1 .. p+n-2.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
