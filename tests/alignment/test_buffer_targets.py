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


def official(k: int = 3, **variables) -> list[str]:
    """The official rule's targets when the tracer reported `variables` (name -> value) and the
    module namespace held them in this (first-definition) order."""
    from coderl_jax.alignment.targets import DEFINITION_ORDER_VAR, choose_targets

    order = [*variables, DEFINITION_ORDER_VAR]
    reported = {name: {"repr": repr(v), "value": serialize(v), "order": 9 - i}  # last-assignment ranks reversed
                for i, (name, v) in enumerate(variables.items())}
    reported[DEFINITION_ORDER_VAR] = {"repr": "", "value": serialize(order), "order": 99}
    return [t["name"] for t in choose_targets({"variables": reported}, k, "official", max_value_chars=0)]


def test_official_targets_are_the_last_k_in_first_definition_order():
    # first definitions n, a, b, c; `n` reassigned last: the official targets are a, b, c, whatever the
    # last-assignment ranks say (reversed here)
    assert official(n=1, a=2, b=3, c=4) == ["a", "b", "c"]
    assert official(k=2, n=1, a=2, b=3, c=4) == ["b", "c"]
    assert official(k=0, n=1, a=2) == ["n", "a"]


def test_official_targets_are_module_level_simple_and_public():
    import collections

    names = official(k=10, **{"x": 1, "main.total": 5, "S.M": 3, "_hidden": 2, "dd": collections.defaultdict(int),
                                  "cnt": collections.Counter("ab"), "obj": object(), "s": {3, 1, 2}, "t": (1, 2),
                                  "d": {1: "a"}, "none": None, "f": 1.5, "flag": True, "text": "hi",
                                  "nan": float("nan"),
                                  "long": list(range(100))})
    # function locals and class attributes are not module-level; "_" names, dict subclasses and objects
    # are not simple; nan has no JSON form; no length limit under max_value_chars=0
    assert names == ["x", "s", "t", "d", "none", "f", "flag", "text", "long"]


def test_official_sets_are_asked_as_sorted_lists_and_missing_order_gives_none():
    from coderl_jax.alignment.targets import choose_targets, official_candidates

    [s] = official_candidates({"s": {"repr": "{3, 1}", "value": serialize({3, 1})},
                               "_coderl_defined": {"repr": "", "value": serialize(["s", "_coderl_defined"])}})
    assert s["json"] == [1, 3] and s["value"]["t"] == "list"
    # the program ended before the order line ran (sys.exit()): the official capture never ran either
    assert choose_targets({"variables": {"x": {"repr": "1", "value": serialize(1), "order": 0}}}, 3, "official") == ()


def test_last_rule_is_unchanged_by_the_official_one():
    from coderl_jax.alignment.targets import choose_targets

    variables = {name: {"repr": repr(v), "value": serialize(v), "order": i}
                 for i, (name, v) in enumerate([("a", 2), ("main.x", 1), ("n", 5)])}
    assert [t["name"] for t in choose_targets({"variables": variables}, 2, "last")] == ["main.x", "n"]


def test_new_switches_are_validated_with_the_field_named():
    AlignmentConfig(targets="official", harvest_calls=False, prompt="official", max_value_chars=0,
                    check_determinism=False).validate()
    for bad, field in ((dict(targets="first"), "alignment.targets"), (dict(prompt="verl"), "alignment.prompt"),
                       (dict(harvest_calls="no"), "alignment.harvest_calls"),
                       (dict(max_value_chars=2.5), "alignment.max_value_chars"),
                       (dict(max_output_chars="8"), "alignment.max_output_chars"),
                       (dict(record_input="longest"), "alignment.record_input")):
        with pytest.raises(ValueError, match=field):
            AlignmentConfig(**bad).validate()
    d = AlignmentConfig()
    assert (d.targets, d.harvest_calls, d.prompt, d.check_determinism, d.max_value_chars, d.record_input,
            d.max_output_chars) == ("last", True, "compact", True, 200, "first", 0)


def test_documented_alignment_switches_exist():
    import dataclasses
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    fields = {f.name for f in dataclasses.fields(AlignmentConfig)}
    for page in ("paper.md", "alignment.md"):
        named = set(re.findall(r"`alignment\.([a-z_]+)", (docs / page).read_text()))
        assert named and named <= fields, (page, named - fields)
