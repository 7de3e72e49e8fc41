"""The one registry helper behind rewards, advantage estimators and benchmarks."""

import pytest

from coderl_jax.registry import Registry


def test_register_get_names_and_unknown():
    shapes = Registry("shape")

    @shapes.register("square")
    def square(x):
        return x * x

    assert square(3) == 9  # the decorator hands the function back unchanged
    assert shapes.register("cube", len) is len
    assert shapes.get("square") is square and shapes["cube"] is len
    assert shapes.names() == list(shapes) == ["square", "cube"] and len(shapes) == 2 and "cube" in shapes
    with pytest.raises(ValueError, match=r"unknown shape 'circle'; known: square, cube"):
        shapes.get("circle")
    shapes.register("square", abs)  # a fork may replace an entry
    assert shapes.get("square") is abs and shapes.names() == ["square", "cube"]


def test_the_three_registries_share_it():
    from coderl_jax.eval.benchmarks import BENCHMARKS
    from coderl_jax.rl.advantages import ESTIMATORS
    from coderl_jax.rl.rewards import REWARDS

    assert all(isinstance(r, Registry) for r in (BENCHMARKS, ESTIMATORS, REWARDS))
    assert {"unit_tests", "test_fraction"} <= set(REWARDS.names())
