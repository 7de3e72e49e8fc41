"""Rewards for code rollouts, registered by name; the loop calls the one its config names.

A reward function takes `(pool, problems, responses, *, timeout_s)` and returns
`(rewards [N] float32, info)` where info maps metric names to per-response lists. A research fork
adds its own with `@register_reward("name")`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from coderl_jax.data.responses import extract_code

RewardFn = Callable[..., tuple[np.ndarray, dict]]
_REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str):
    def wrap(fn: RewardFn) -> RewardFn:
        _REWARDS[name] = fn
        return fn

    return wrap


def get_reward(name: str) -> RewardFn:
    if name not in _REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {sorted(_REWARDS)}")
    return _REWARDS[name]


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


@register_reward("unit_tests")
def unit_test_reward(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0):
    """1.0 when the last code block passes every unit test of its problem, else 0.0."""
    rewards, statuses = code_rewards(pool, problems, responses, timeout_s=timeout_s)
    return rewards, {"status": statuses}
