"""Rewards for code rollouts, registered by name; the loop calls the one its config names.

A reward function takes `(pool, problems, responses, *, timeout_s)` and returns
`(rewards [N] float32, info)` where info maps metric names to per-response lists. A research fork
adds its own with `@register_reward("name")`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from coderl_jax.data.responses import extract_code
from coderl_jax.registry import Registry

RewardFn = Callable[..., tuple[np.ndarray, dict]]
REWARDS: Registry[RewardFn] = Registry("reward")


def register_reward(name: str):
    """Decorator: register a reward function under `name` (the config's `tracer.reward`)."""
    return REWARDS.register(name)


def get_reward(name: str) -> RewardFn:
    return REWARDS.get(name)


def code_reward_requests(problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0,
                         stop_on_failure: bool = True) -> tuple[list[dict], list[int]]:
    """Tracer run_tests requests for the responses that contain code; returns (requests, row index).
    With stop_on_failure=False the tracer runs every test case even after one fails."""
    requests, rows = [], []
    for i, (problem, response) in enumerate(zip(problems, responses)):
        code = extract_code(response)
        if code is None:
            continue
        requests.append({"id": str(i), "program": code, "tests": problem.tests, "timeout_s": timeout_s,
                         "stop_on_failure": stop_on_failure})
        rows.append(i)
    return requests, rows


def _run_tests(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float,
               stop_on_failure: bool = True) -> list[dict | None]:
    """The tracer's run_tests result for each response, None where it holds no code."""
    requests, rows = code_reward_requests(problems, responses, timeout_s=timeout_s, stop_on_failure=stop_on_failure)
    results: list[dict | None] = [None] * len(responses)
    for row, result in zip(rows, pool.run_tests(requests) if requests else ()):
        results[row] = result
    return results


def _status(result: dict | None) -> str:
    return "no_code" if result is None else result.get("status", "sandbox_error")


def code_rewards(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0):
    """Binary rewards (1.0 when every test passes) and the tracer's statuses, one per response."""
    results = _run_tests(pool, problems, responses, timeout_s=timeout_s)
    rewards = np.array([1.0 if r is not None and r.get("passed") else 0.0 for r in results], np.float32)
    return rewards, [_status(r) for r in results]


@register_reward("unit_tests")
def unit_test_reward(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0):
    """1.0 when the last code block passes every unit test of its problem, else 0.0."""
    rewards, statuses = code_rewards(pool, problems, responses, timeout_s=timeout_s)
    return rewards, {"status": statuses}


@register_reward("test_fraction")
def test_fraction_reward(pool, problems: Sequence, responses: Sequence[str], *, timeout_s: float = 6.0):
    """The fraction of the problem's test cases the last code block passes (every case is run), so a
    program that is nearly right (a constant off by one, a wrong tie rule) earns more than one that is
    not, and a group whose samples all fail still carries signal. 0.0 without code or on a syntax error.
    info["passed"] says which responses passed every case: the pass rate and the alignment harvest
    (failed programs) use it, not the fraction."""
    results = _run_tests(pool, problems, responses, timeout_s=timeout_s, stop_on_failure=False)
    passed = [result is not None and bool(result.get("passed")) for result in results]
    rewards = np.zeros(len(responses), np.float32)
    for row, result in enumerate(results):
        cases = (result or {}).get("tests") or []
        share = sum(c.get("status") == "passed" for c in cases) / len(cases) if cases else 0.0
        # every case passed but the run was judged failed (tampering): no credit
        rewards[row] = 1.0 if passed[row] else (share if share < 1.0 else 0.0)
    return rewards, {"status": [_status(r) for r in results], "passed": passed}
