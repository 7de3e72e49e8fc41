from __future__ import annotations

import json

import numpy as np
import pytest

from coderl_jax.alignment import AlignmentBuffer, AlignmentRecord
from coderl_jax.alignment.config import AlignmentConfig
from coderl_jax.alignment.targets import change_counts, eligible_variables, select_targets
from tracer.values import serialize


def rec(i: int, step: int) -> AlignmentRecord:
    return AlignmentRecord(program=f"print({i})", stdin="", output=f"{i}\n", targets=(), step=step)


def test_buffer_is_bounded_and_draws_from_the_latest_harvest():
    buf = AlignmentBuffer(max_size=5, strategy="recent")
    buf.add([rec(i, 1) for i in range(4)])
    buf.add([rec(i, 2) for i in range(10, 13)])
    assert len(buf) == 5  # the oldest left first
    assert {r.step for r in buf.pool()} == {2} and len(buf.pool()) == 3
    assert buf.ready(3) and not buf.ready(4)
    drawn = buf.sample(50, np.random.default_rng(0))
    assert len(drawn) == 50 and {r.output for r in drawn} == {"10\n", "11\n", "12\n"}  # with replacement
    uniform = AlignmentBuffer(max_size=5, strategy="uniform")
    uniform.add([rec(i, 1) for i in range(4)] + [rec(9, 2)])
    assert len(uniform.pool()) == 5


def test_buffer_state_round_trips_through_json():
    buf = AlignmentBuffer(max_size=10)
    buf.add([rec(i, 3) for i in range(4)])
    other = AlignmentBuffer(max_size=10)
    other.restore(json.loads(json.dumps(buf.state())))
    assert list(other._records) == list(buf._records)
    assert other.sample(5, np.random.default_rng(1)) == buf.sample(5, np.random.default_rng(1))
    with pytest.raises(ValueError, match="alignment-buffer"):
        other.restore({"records": []})


VARS = {name: {"repr": repr(v), "value": serialize(v), "line": i, "order": i}
        for i, (name, v) in enumerate([("a", 1), ("s", {1, 2}), ("f", float("nan")), ("main.acc", [1, 2]),
                                       ("d", {1: "x"}), ("main.i", 3), ("big", "x" * 500)])}


def test_only_json_faithful_values_are_targets():
    names = [c["name"] for c in eligible_variables(VARS)]
    assert names == ["a", "main.acc", "d", "main.i"]  # no set, no nan, nothing over 200 characters
    assert [c["json"] for c in eligible_variables(VARS)] == [1, [1, 2], {"1": "x"}, 3]


def test_target_strategies():
    cands = eligible_variables(VARS)
    assert [c["name"] for c in select_targets(cands, 2, "last")] == ["d", "main.i"]
    assert len(select_targets(cands, 0, "last")) == 4 and len(select_targets(cands, 2, "all")) == 4
    picks = select_targets(cands, 2, "random", rng=np.random.default_rng(0))
    assert len(picks) == 2 and picks == sorted(picks, key=lambda c: c["order"])
    # loop: a variable changed 50 times is chosen far more often than one assigned once
    changes = change_counts([{"changed": {"main.acc": {}}}] * 50 + [{"changed": {"a": {}}}])
    assert changes == {"main.acc": 50, "a": 1}
    hits = sum("main.acc" in [c["name"] for c in select_targets(cands, 1, "loop", rng=np.random.default_rng(s),
                                                               changes=changes)] for s in range(200))
    assert hits > 150
    with pytest.raises(ValueError, match="targets"):
        select_targets(cands, 1, "best")


def test_config_split_and_validation():
    assert AlignmentConfig(mode="coderl").split(128) == (77, 51)  # the paper's 77 code + 51 alignment
    assert AlignmentConfig(mode="off").split(128) == (128, 0)
    with pytest.raises(ValueError, match="alignment.reward"):
        AlignmentConfig(reward="exact").validate()
    with pytest.raises(ValueError, match="alignment.mode"):
        AlignmentConfig(mode="on").validate()
