import numpy as np

from coderl_jax.train.phases import Round, fill_with_signal


def make_round(tag, rewards_per_group, g=2):
    p = len(rewards_per_group)
    return Round([f"{tag}{i}" for i in range(p)], [[i] for i in range(p)],
                 [f"{tag}{i}c{j}" for i in range(p) for j in range(g)],
                 np.asarray([x for grp in rewards_per_group for x in grp], np.float32))


def test_refills_with_groups_that_carry_signal():
    first = make_round("a", [[1, 1], [0, 1], [0, 0]])  # only a1 has signal
    extra = {1: make_round("b", [[0, 0], [1, 0], [1, 1]]), 2: make_round("c", [[0, 1], [1, 0], [0, 0]])}
    calls = []

    def draw(i):
        calls.append(i)
        return extra[i]

    out, rounds = fill_with_signal(first, draw, prompts_needed=3, group_size=2, max_extra_rounds=5)
    assert rounds == 2 and calls == [1, 2]
    assert out.problems == ["a1", "b1", "c0"]
    assert out.completions == ["a1c0", "a1c1", "b1c0", "b1c1", "c0c0", "c0c1"]
    np.testing.assert_array_equal(out.rewards, [0, 1, 1, 0, 0, 1])
    assert all(np.std(out.rewards.reshape(-1, 2), axis=1) > 0)


def test_bound_on_extra_rounds_returns_the_original_batch():
    first = make_round("a", [[1, 1], [0, 0]])
    out, rounds = fill_with_signal(first, lambda i: make_round("z", [[0, 0], [0, 0]]), prompts_needed=2,
                                   group_size=2, max_extra_rounds=2)
    assert rounds == 2 and out is first


def test_no_extra_rounds_when_every_group_has_signal():
    first = make_round("a", [[1, 0], [0, 1]])
    out, rounds = fill_with_signal(first, lambda i: 1 / 0, prompts_needed=2, group_size=2, max_extra_rounds=3)
    assert rounds == 0 and out.problems == first.problems
